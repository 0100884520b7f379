"""审计 audit trail services: chain verification and monthly export (第十二条, 等保 2.0 8.1.4.3)."""
