"""The one exception every data loader raises for missing or bad files."""


class DataError(Exception):
    """Data is missing, unreadable or corrupt; the message says which file and what to do."""
