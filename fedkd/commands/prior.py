"""``fedkd prior train --dataset NAME --out DIR`` and ``fedkd prior show DIR``: the diffusion prior/teacher."""

from __future__ import annotations

import argparse

from fedkd.devices import add_device_option
from fedkd.precision import PRECISIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prior", help="train and inspect the small diffusion prior (also the single-fold teacher)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    train = actions.add_parser("train", help="train a diffusion model (DDPM objective) and save it as safetensors")
    train.add_argument("--dataset", required=True, help="registered dataset at the prior's resolution, e.g. digits")
    train.add_argument("--out", required=True, help="model directory, e.g. pretrained/prior-digits")
    train.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batches, noise and split")
    train.add_argument("--widths", default="16,32", help="UNet channels per level, comma-separated (default 16,32)")
    train.add_argument("--layers-per-block", type=int, default=1)
    train.add_argument("--timesteps", type=int, default=64, help="diffusion steps T of the cosine schedule")
    train.add_argument("--class-conditional", action="store_true", help="add a class embedding (sample with y=)")
    train.add_argument("--steps", type=int, default=4000, help="optimizer steps")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine-decayed to 0)")
    train.add_argument("--ema-decay", type=float, default=0.995)
    add_device_option(train)
    train.add_argument("--precision", default="fp32", choices=PRECISIONS,
                       help="forward passes in fp32 (default) or bf16 autocast (CUDA only)")
    train.set_defaults(func=handle_train)

    show = actions.add_parser("show", help="check a saved diffusion model and print its metadata")
    show.add_argument("path", help="model directory")
    show.set_defaults(func=handle_show)


def handle_train(args: argparse.Namespace) -> int:
    from fedkd.data import load_dataset
    from fedkd.devices import resolve_device
    from fedkd.generative.artifacts import parse_ints, reproducing_command
    from fedkd.generative.prior_training import PriorTraining, train_prior_on_dataset
    from fedkd.models.diffusion import DiffusionConfig, save_prior
    from fedkd.precision import check_precision

    data = load_dataset(args.dataset)
    config = DiffusionConfig(image_size=data.image_size, channels=data.channels,
                             widths=parse_ints(args.widths, "--widths"), layers_per_block=args.layers_per_block,
                             num_train_steps=args.timesteps, n_classes=data.n_classes if args.class_conditional else 0)
    settings = PriorTraining(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay)
    command = reproducing_command("fedkd prior train", args, (
        "dataset", "out", "seed", "widths", "layers_per_block", "timesteps", "steps", "batch_size", "lr", "ema_decay",
        "class_conditional", "device", "precision"))
    device = resolve_device(args.device, "--device")
    check_precision(args.precision, device, "--precision", "--device")
    model, provenance = train_prior_on_dataset(args.dataset, config, settings, args.seed, command, device,
                                               args.precision)
    out = save_prior(model, args.out, provenance)
    print(f"diffusion prior on {args.dataset} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{provenance.training['train_seconds']} s); saved to {out}")
    return 0


def handle_show(args: argparse.Namespace) -> int:
    from fedkd.generative.artifacts import describe
    from fedkd.models.diffusion import load_prior

    load_prior(args.path)  # checks files, checksum and config before printing
    print(describe(args.path))
    return 0
