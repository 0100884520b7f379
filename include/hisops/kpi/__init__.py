"""运维考核 KPI report (第六条) and the monthly 等保 evidence pack — from the catalog only.

Light on purpose: import the submodules (``period``, ``figures``, ``service``, ``evidence``).
"""
