"""The interpolation core: IFNet (RIFE), backward warping, weight registry and the :class:`Interpolator` engine.

Knows nothing of files (other than the checkpoint), media containers or the CLI.
"""

from retime.interpolate.engine import Interpolator, PreparedFrame, choose_device
from retime.interpolate.ifnet import IFNet, IFNetOutput

__all__ = ["IFNet", "IFNetOutput", "Interpolator", "PreparedFrame", "choose_device"]
