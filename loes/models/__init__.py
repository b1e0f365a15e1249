"""Registered regression networks: ``get_network("alexnet3d", spatial_size)``."""

from loes.models.alexnet3d import AlexNet3D
from loes.models.loes_model import LoesModel
from loes.models.registry import available_networks, get_network, register_network
from loes.models.sfcn import SFCN
from loes.models.summary import NetworkSummary, summarize_network

__all__ = [
    "SFCN",
    "AlexNet3D",
    "LoesModel",
    "NetworkSummary",
    "available_networks",
    "get_network",
    "register_network",
    "summarize_network",
]
