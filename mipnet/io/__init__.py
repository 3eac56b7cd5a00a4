"""Network files: load and save by extension (ONNX, PyTorch, npz).

torch and onnx are imported only when a file of that kind is read or written.
"""

from mipnet.io.files import SUPPORTED_EXTENSIONS, load_network, load_npz, save_network, save_npz

__all__ = ["load_network", "save_network", "load_npz", "save_npz", "SUPPORTED_EXTENSIONS"]
