"""Hot ops, each with a plain-PyTorch reference (`impl='ref'`) and a torch.compile path (`impl='compiled'`)."""
from gan.ops._compile import compile_fn, cpu_compile_options, frozen
from gan.ops.bias_act import ACTIVATIONS, bias_act
from gan.ops.modconv import modulated_conv2d, modulated_separable_conv2d
from gan.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = ["ACTIVATIONS", "bias_act", "modulated_conv2d", "modulated_separable_conv2d", "upfirdn2d", "upsample2d",
           "downsample2d", "filter2d", "setup_filter", "compile_fn", "cpu_compile_options", "frozen"]
