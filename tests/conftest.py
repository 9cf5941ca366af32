"""Suite-wide settings. `make test` runs two xdist workers on two cores: one thread each avoids
oversubscription, which makes small matmuls many times slower."""
import torch

torch.set_num_threads(1)
