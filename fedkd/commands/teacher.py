"""``fedkd teacher train --dataset NAME --model NAME --out DIR`` and ``fedkd teacher show DIR``."""

from __future__ import annotations

import argparse

from fedkd.devices import add_device_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="train, save and inspect the teachers that black-box runs query")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    train = actions.add_parser("train", help="train a classifier on a registered dataset and save it as a teacher")
    train.add_argument("--dataset", required=True, help="registered dataset, e.g. mnist5k, digits28")
    train.add_argument("--data-path", default="", help="file or folder for the local-file datasets")
    train.add_argument("--model", required=True, help="classifier name, e.g. lenet5 (see `fedkd list`)")
    train.add_argument("--out", required=True, help="teacher directory, e.g. teachers/mnist5k-lenet5")
    train.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batch order and split")
    train.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction (default 0.2)")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    train.add_argument("--no-augment", dest="augment", action="store_false", help="no random 2-pixel shifts")
    add_device_option(train)
    train.set_defaults(func=handle_train)

    show = actions.add_parser("show", help="check a saved teacher and print its metadata")
    show.add_argument("path", help="teacher directory")
    show.set_defaults(func=handle_show)


def handle_train(args: argparse.Namespace) -> int:
    from fedkd.devices import resolve_device
    from fedkd.teachers import save_teacher, train_teacher

    teacher = train_teacher(args.dataset, args.model, seed=args.seed, test_fraction=args.test_fraction,
                            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, augment=args.augment,
                            data_path=args.data_path, device=resolve_device(args.device, "--device"))
    out = save_teacher(teacher, args.out)
    print(f"teacher {args.model} on {args.dataset}: test accuracy {teacher.info.test_acc:.4f}; saved to {out}")
    return 0


def handle_show(args: argparse.Namespace) -> int:
    import dataclasses

    from fedkd.teachers import load_teacher

    info = load_teacher(args.path).info
    for key, value in dataclasses.asdict(info).items():
        print(f"{key:<15} {value}")
    return 0
