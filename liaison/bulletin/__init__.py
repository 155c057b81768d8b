"""通报 and 整改: the office's periodic bulletin of figures (by station, department and deputy, with a
ranking and the units under the threshold), and the rectification item each such unit gets."""
