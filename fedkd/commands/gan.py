"""``fedkd gan train --dataset NAME --out DIR`` and ``fedkd gan show DIR``: the conditional GAN teacher."""

from __future__ import annotations

import argparse

from fedkd.devices import add_device_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gan", help="train and inspect the conditional GAN teacher of dark-knowledge distillation")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    train = actions.add_parser("train", help="train a conditional DCGAN adversarially and save G and D")
    train.add_argument("--dataset", required=True, help="registered labelled dataset, e.g. digits")
    train.add_argument("--out", required=True, help="model directory, e.g. pretrained/gan-digits")
    train.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batches, noise and split")
    train.add_argument("--widths", default="128,64,32", help="generator channels, coarse to fine (default 128,64,32)")
    train.add_argument("--disc-widths", default="64,128", help="discriminator channels (default 64,128)")
    train.add_argument("--z-dim", type=int, default=32)
    train.add_argument("--steps", type=int, default=4000, help="optimizer steps of each network")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate of both networks")
    add_device_option(train)
    train.set_defaults(func=handle_train)

    show = actions.add_parser("show", help="check a saved GAN and print its metadata")
    show.add_argument("path", help="model directory")
    show.set_defaults(func=handle_show)


def handle_train(args: argparse.Namespace) -> int:
    from fedkd.data import load_dataset
    from fedkd.devices import resolve_device
    from fedkd.generative.artifacts import parse_ints, reproducing_command
    from fedkd.generative.gan_training import GanTraining, train_gan_on_dataset
    from fedkd.models.conditional_gan import GanConfig, save_gan

    data = load_dataset(args.dataset)
    config = GanConfig(image_size=data.image_size, channels=data.channels, n_classes=data.n_classes,
                       z_dim=args.z_dim, widths=parse_ints(args.widths, "--widths"),
                       disc_widths=parse_ints(args.disc_widths, "--disc-widths"))
    settings = GanTraining(steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    command = reproducing_command("fedkd gan train", args, (
        "dataset", "out", "seed", "widths", "disc_widths", "z_dim", "steps", "batch_size", "lr", "device"))
    generator, discriminator, provenance = train_gan_on_dataset(args.dataset, config, settings, args.seed, command,
                                                                resolve_device(args.device, "--device"))
    out = save_gan(generator, discriminator, args.out, provenance)
    print(f"conditional GAN on {args.dataset} (generator {sum(p.numel() for p in generator.parameters()):,} "
          f"parameters, {provenance.training['train_seconds']} s); saved to {out}")
    return 0


def handle_show(args: argparse.Namespace) -> int:
    from fedkd.generative.artifacts import describe
    from fedkd.models.conditional_gan import load_gan

    load_gan(args.path)  # checks files, checksum and config before printing
    print(describe(args.path))
    return 0
