"""合成医院信息系统数据 — a deterministic synthetic HIS database generator (SQL-driven).

Entry point: :func:`hisops.synth.generate.generate` (and ``expected_counts``), or the CLI
``hisops synth generate --dsn DSN --scale S --seed N``.
"""
