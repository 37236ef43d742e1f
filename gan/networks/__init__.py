"""Networks: the temporally aware generator and the image / video discriminators."""
from gan.networks.discriminator import ImageDiscriminator, VideoDiscriminator
from gan.networks.generator import Generator, MotionNetwork, condition_vector, motion_codes_for_seed
from gan.networks.layered import LayeredGenerator


def build_generator(cfg, c_dim: int = 0) -> Generator:
    """G from a full Config (gan.config.Config) and the condition size (0: unconditional): the layered G when
    G.objects > 0 (or auto resolves to objects), else the synthesis G."""
    from gan.config import resolved_channels, resolved_objects
    channels, objects = resolved_channels(cfg.data), resolved_objects(cfg)
    if objects > 0:
        return LayeredGenerator(cfg.G, cfg.data.resolution, channels, c_dim, objects=objects)
    return Generator(cfg.G, cfg.data.resolution, channels, c_dim)


def build_discriminators(cfg, c_dim: int = 0):
    """(image D, video D) from a full Config."""
    return (ImageDiscriminator(cfg.D, cfg.data.resolution, cfg.data.channels, c_dim),
            VideoDiscriminator(cfg.D, cfg.data.resolution, cfg.data.channels, c_dim))


__all__ = ["Generator", "LayeredGenerator", "MotionNetwork", "ImageDiscriminator", "VideoDiscriminator",
           "build_generator", "build_discriminators", "condition_vector", "motion_codes_for_seed"]
