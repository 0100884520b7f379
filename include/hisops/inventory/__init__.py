"""The inventory: the hospital's systems (清单), parsed from one YAML file."""

from hisops.inventory.loader import InventoryError, default_inventory_path, load_inventory
from hisops.inventory.models import (
    BackupPolicy,
    Database,
    Endpoint,
    Host,
    Inventory,
    LogSource,
    Notification,
    System,
)
from hisops.inventory.thresholds import Level, ThresholdOverrides, Thresholds

__all__ = [
    "BackupPolicy",
    "Database",
    "Endpoint",
    "Host",
    "Inventory",
    "InventoryError",
    "Level",
    "LogSource",
    "Notification",
    "System",
    "ThresholdOverrides",
    "Thresholds",
    "default_inventory_path",
    "load_inventory",
]
