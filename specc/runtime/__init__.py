"""Running a compiled graph on this CPU: weights in flat buffers, forward and backward, BLAS and worker threads."""
