"""Networks: the generator family (one interface, interface.py: the synthesis G, the layered G, the scene G and their
frame-conditioned forms), their encoders, and the image / video discriminators."""
from gan.networks.conditional import ConditionalGenerator, LayeredConditionalGenerator
from gan.networks.discriminator import ImageDiscriminator, VideoDiscriminator
from gan.networks.encoders import ContentEncoder, MotionEncoder, ObjectEncoder, ObjectSplitter
from gan.networks.generator import Generator, MotionNetwork, condition_vector, motion_codes_for_seed
from gan.networks.interface import VideoGenerator
from gan.networks.layered import LayeredGenerator
from gan.networks.scene import SceneGenerator


def build_generator(cfg, c_dim: int = 0) -> VideoGenerator:
    """The generator a full Config (gan.config.Config) asks for. cond.mode 'image' / 'continue': the frame-
    conditioned G (conditional.py); otherwise c_dim is the condition size (0: unconditional; the number of classes;
    'text': cfg.cond.text_dim when 0). Either way the scene G (scene.py) when G.camera names a camera kind, else the
    layered form when G.objects > 0 (or auto resolves to objects), else the synthesis one."""
    from gan.config_auto import resolved_backgrounds, resolved_camera, resolved_channels, resolved_objects
    channels, objects, camera = resolved_channels(cfg.data), resolved_objects(cfg), resolved_camera(cfg)
    if cfg.cond.mode in ("image", "continue"):
        if objects > 0:
            return LayeredConditionalGenerator(cfg.G, cfg.data.resolution, channels, cfg.cond, objects)
        return ConditionalGenerator(cfg.G, cfg.data.resolution, channels, cfg.cond)
    if cfg.cond.mode == "text":
        c_dim = c_dim or cfg.cond.text_dim
    if camera != "none":
        return SceneGenerator(cfg.G, cfg.data.resolution, channels, c_dim, camera, max(objects, 0),
                              resolved_backgrounds(cfg))
    if objects > 0:
        return LayeredGenerator(cfg.G, cfg.data.resolution, channels, c_dim, objects=objects)
    return Generator(cfg.G, cfg.data.resolution, channels, c_dim)


def build_discriminators(cfg, c_dim: int = 0):
    """(image D, video D) from a full Config."""
    return (ImageDiscriminator(cfg.D, cfg.data.resolution, cfg.data.channels, c_dim),
            VideoDiscriminator(cfg.D, cfg.data.resolution, cfg.data.channels, c_dim))


__all__ = ["VideoGenerator", "Generator", "LayeredGenerator", "SceneGenerator", "ConditionalGenerator", "LayeredConditionalGenerator",
           "ContentEncoder", "MotionEncoder", "ObjectEncoder", "ObjectSplitter", "MotionNetwork",
           "ImageDiscriminator", "VideoDiscriminator", "build_generator", "build_discriminators", "condition_vector",
           "motion_codes_for_seed"]
