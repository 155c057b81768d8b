"""Matters raised in person (walk-ins), the printable 交办单 and staff 回访 (see `service.py`)."""
