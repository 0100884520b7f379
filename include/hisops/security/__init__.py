"""安全审计 security audit (第十二条; 等保 2.0 8.1.4): database and
host configuration vs baselines."""
