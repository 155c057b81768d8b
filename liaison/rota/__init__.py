"""Duty rota: 代表周三见 reception shifts, 局长进站 and 监督岗 shifts, swaps, check-ins, grid visits."""
