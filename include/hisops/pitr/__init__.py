"""物理备份与时间点恢复 The physical tier on pgBackRest: configuration from the inventory, stanza,
full/diff/incr backups recorded in the one catalog, WAL archive health, PITR drills and restores.

hisops does not reimplement pgBackRest: it writes its configuration, runs its commands and reads
``pgbackrest info --output=json``. Light package: modules import their heavy dependencies inside
functions.
"""
