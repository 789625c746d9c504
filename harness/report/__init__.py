"""Results across kernels: the records, the matrix, bisect."""
