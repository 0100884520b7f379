"""保留清理 retention cleanup (第八条 系统文件清理): host files, hisops' records, Airflow metadata.

Import-cheap: submodules are imported where they are used.
"""
