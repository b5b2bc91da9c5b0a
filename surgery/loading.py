"""Resolve a MODEL descriptor from the command line into ``(model, example_input)``.

Descriptors: a zoo name (``segnet``), ``timm:NAME`` (the zoo's UNet over a timm backbone),
``smp:ARCH:ENCODER`` (segmentation_models_pytorch, random weights), or ``path/to/file.py:factory``
(a function returning a model, or ``(model, example_input)``). ``model_args`` reach the builder
(zoo and timm: `zoo.create_model`'s keywords; smp: `smp.create_model`'s; a file: the factory's).
Local weights only, nothing is downloaded: ``pretrained=PATH`` loads a whole model's state_dict (any
kind); smp's ``encoder_weights=PATH`` loads a local file into the encoder; ``timm:NAME`` takes
``backbone_weights=PATH``, a local timm checkpoint of that backbone.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from indexnas.errors import UserError
from indexnas.names import did_you_mean

SMP_PREFIX = "smp:"
DEFAULT_SIZE = 224  # the paper's input side; smp needs multiples of 32
WEIGHT_ARGS = ("pretrained", "backbone_weights", "encoder_weights")  # model arguments that only load local weights
DESCRIPTOR_HELP = "a zoo name, timm:NAME (a UNet over that backbone), smp:ARCH:ENCODER, or path/to/file.py:factory"


def load_model(descriptor: str, size: int | None = None,
               model_args: Mapping[str, Any] | None = None) -> tuple[nn.Module, Tensor]:
    """Build the model a descriptor names with ``model_args`` and an example input of side ``size``."""
    if not isinstance(descriptor, str) or not descriptor.strip():
        raise UserError(f"no model given ({descriptor!r})", f"name one: {DESCRIPTOR_HELP}")
    if size is not None and size < 1:
        raise UserError(f"the example input side must be positive, got {size}", "pass e.g. --size 224")
    args = dict(model_args or {})
    pretrained = args.pop("pretrained", None)
    if descriptor.startswith(SMP_PREFIX):
        model, example = _smp(descriptor, size, args)
    elif is_model_file(descriptor):
        path, _, factory = descriptor.rpartition(":")
        model, example = _from_file(Path(path), factory, size, args)
    else:
        return _zoo(descriptor, size, args, pretrained)
    if pretrained is not None:
        from indexnas.zoo.checkpoint import load_checkpoint

        load_checkpoint(model, _local_file(pretrained, "pretrained"), descriptor)
    return model, example


def is_model_file(descriptor: str) -> bool:
    """``path/to/file.py:factory``: a user's model file (not a zoo name, timm: or smp:)."""
    path, sep, _ = descriptor.rpartition(":")
    return bool(sep) and path.endswith(".py")


def add_model_arg_option(parser: argparse.ArgumentParser) -> None:
    """``--model-arg KEY=VALUE`` (repeatable) on a command that takes a MODEL descriptor."""
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="an argument for the model's builder, typed like a Python literal (repeatable): e.g. "
                        "classes=6 (smp), num_classes=6 or width=0.5 (zoo), in_channels=1, "
                        "backbone_weights=resnet18.pth (timm:), encoder_weights=encoder.pth (smp), "
                        "pretrained=model.pth (any: a whole state_dict)")


def parse_model_args(pairs: Iterable[str]) -> dict[str, Any]:
    """``["classes=6", "encoder_depth=4", "name=x"]`` -> keywords, typed like Python literals (else strings)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"--model-arg {pair!r} is not KEY=VALUE", "write e.g. --model-arg classes=6")
        try:
            args[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            args[key] = text.strip()  # a bare word: a string (a path, an encoder name)
    return args


def _local_file(path: object, argument: str) -> str:
    """A weights file named by a model argument; it must exist here (nothing is downloaded)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise UserError(f"{argument}={path!r} is not a local file",
                        f"pass the path of a weights file on this machine as {argument}=PATH; nothing is downloaded")
    return os.fspath(path)


def _zoo(name: str, size: int | None, args: dict[str, Any], pretrained: object) -> tuple[nn.Module, Tensor]:
    from indexnas import zoo

    if pretrained is not None:
        pretrained = _local_file(pretrained, "pretrained")
    model = zoo.create_model(name, pretrained=pretrained, **args)
    channels = args.get("in_chans")
    return model, zoo.example_input(name, size=size or DEFAULT_SIZE, in_chans=channels)


def _smp(descriptor: str, size: int | None, args: dict[str, Any]) -> tuple[nn.Module, Tensor]:
    parts = descriptor.split(":")
    if len(parts) != 3 or not all(parts[1:]):
        raise UserError(f"{descriptor!r} is not smp:ARCH:ENCODER", "write e.g. smp:unet:resnet18 or smp:fpn:mobilenet_v2")
    _, arch, encoder = parts
    try:
        import segmentation_models_pytorch as smp
    except ImportError as error:
        raise UserError(
            "segmentation_models_pytorch is not installed", "pip install 'indexnas[test]' (or segmentation-models-pytorch)"
        ) from error
    archs = {a.lower(): a for a in smp.MODEL_ARCHITECTURES_MAPPING} if hasattr(smp, "MODEL_ARCHITECTURES_MAPPING") else {}
    if archs and arch.lower() not in archs:
        raise UserError(f"unknown smp architecture {arch!r}",
                        f"{did_you_mean(arch, archs.values())}use one of: {', '.join(sorted(archs))}")
    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders and not encoder.startswith("tu-"):  # tu-NAME: any timm backbone
        raise UserError(f"unknown smp encoder {encoder!r}",
                        f"{did_you_mean(encoder, encoders)}see smp.encoders.get_encoder_names(), or tu-TIMMNAME")
    encoder_weights = args.pop("encoder_weights", None)
    try:
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, **args)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"smp could not build {arch} over {encoder} with {args or 'no arguments'}: {error}",
                        "check the --model-arg names against smp.create_model's (e.g. classes, in_channels, "
                        "encoder_depth), or try another encoder or architecture") from error
    if encoder_weights is not None:
        from indexnas.zoo.checkpoint import load_checkpoint

        load_checkpoint(model.encoder, _local_file(encoder_weights, "encoder_weights"), f"the {encoder} encoder")
    side = size or DEFAULT_SIZE
    channels = int(args.get("in_channels", 3))
    return model, torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(0))


def _from_file(path: Path, factory: str, size: int | None, args: dict[str, Any]) -> tuple[nn.Module, Tensor]:
    if not path.is_file():
        raise UserError(f"no such file: {path}", "give path/to/file.py:factory with an existing file")
    if not factory.isidentifier():
        raise UserError(f"{factory!r} is not a function name", f"write it as {path}:make_model")
    module_name = f"indexnas_user_{path.stem}_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise UserError(f"importing {path} failed: {type(error).__name__}: {error}", "fix the file so it imports") from error
    build = getattr(module, factory, None)
    if not callable(build):
        names = [n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name]
        raise UserError(f"{path} has no function {factory!r}", f"functions there: {', '.join(names) or 'none'}")
    try:
        built = build(**args)
    except Exception as error:  # the user's factory: its failure is theirs to fix, not a traceback of ours
        raise UserError(f"{path}:{factory}() raised {type(error).__name__}: {error}",
                        "fix the factory so that it returns a model, or (model, example_input)") from error
    if isinstance(built, tuple) and len(built) != 2:
        raise UserError(f"{path}:{factory}() returned a tuple of {len(built)} items", "return a model, or (model, example_input)")
    model, example = built if isinstance(built, tuple) else (built, None)
    if not isinstance(model, nn.Module):
        raise UserError(f"{path}:{factory}() returned {type(model).__name__}, not an nn.Module",
                        "return a model, or (model, example_input)")
    if example is None:
        side = size or DEFAULT_SIZE
        example = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    elif size is not None:
        raise UserError(f"{path}:{factory}() supplies its own example input; --size does not apply",
                        "drop --size, or return only the model")
    return model, example
