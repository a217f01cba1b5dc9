"""sigma(x) (paper Eq. 1): the exact kNN search (in memory or streamed and sharded over
processes), its on-disk cache, the precomputation command and the noise levels themselves."""
