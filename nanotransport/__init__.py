"""nanotransport: differentiable simulation of nanocarrier and drug transport into tumors."""

__version__ = "0.1.0"
