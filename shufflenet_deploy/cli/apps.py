"""``sdeploy bundle`` and ``sdeploy demo``: feed and run the demo apps."""

from __future__ import annotations

from pathlib import Path

import click

from ..apps.bundle import app_target, bundle
from ..apps.demo_server import check_web_demo, make_server
from ..apps.golden import write_golden
from ..backends import app_bindings, app_names
from ..errors import SdeployError
from ..export import export
from ..preprocess import check_img_size
from .common import IMG_SIZE, echo_json, main, weights_options


def _engines_help() -> str:
    apps = "; ".join(f"{app}: {', '.join(app_bindings(app))}" for app in app_names())
    return f"The app's engine, by target name; the first listed is the default ({apps})."


@main.command("bundle")
@click.option("--app", type=click.Choice(app_names()), required=True, help="Demo app to fill.")
@click.option("--from", "from_dir", type=click.Path(file_okay=False), help="An export directory (with sdeploy.json).")
@click.option("--arch", help="Export this architecture first (with the options the app needs), then bundle it.")
@click.option("--target", default=None, help=_engines_help())
@click.option("--artifact", default=None, metavar="KEY",
              help="Which of the target's artifacts to bundle, by manifest key (e.g. onnx-fp16); default: its first.")
@weights_options
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line (with --arch).")
@click.option("--img-size", type=IMG_SIZE, default=None, help="Input size when exporting with --arch (default 224).")
@click.option("--dest", type=click.Path(file_okay=False),
              help="Asset folder to fill (default: the app's folder under the current directory).")
@click.option("--no-selftest", is_flag=True, help="Leave out selftest.json (the app's on-device parity check).")
@click.option("--json", "as_json", is_flag=True, help="Print the written model.json.")
def bundle_command(app, from_dir, arch, target, artifact, weights, num_classes, seed, labels, img_size, dest,
                   no_selftest, as_json) -> None:  # fmt: skip
    """Copy a verified artifact, its labels, model.json and a self-test into a demo app's assets."""
    if bool(from_dir) == bool(arch):
        raise SdeployError("pass exactly one of --from EXPORT_DIR or --arch ARCH")
    target, binding = app_target(app, target)
    if arch:
        if img_size is not None:
            check_img_size(img_size)
        result = export(arch, target, weights=weights, num_classes=num_classes, labels=labels, seed=seed,
                        img_size=img_size, **binding.export_options)  # fmt: skip
        if not result.ok:
            raise SdeployError(f"export for the {app} app failed: {result.results[0].error}", exit_code=1)
        from_dir = result.export_dir
    bundled = bundle(app, from_dir, dest, target=target, artifact=artifact, selftest=not no_selftest)
    if as_json:
        echo_json(bundled.model_json)
        return
    click.echo(f"bundled {bundled.model_json['arch']} ({bundled.model_json['artifact']}) into {bundled.dest}: "
               + ", ".join(bundled.files))  # fmt: skip


@main.group("demo")
def demo_group() -> None:
    """Run the web demo locally, or write golden vectors for the demo apps' tests."""


@demo_group.command("web")
@click.option("--dir", "root", type=click.Path(file_okay=False), default="web_demo", show_default=True,
              help="The web demo folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free port).")
def demo_web_command(root, host, port) -> None:
    """Serve the web demo (after 'npm ci' in web_demo and 'sdeploy bundle --app web')."""
    root = Path(root)
    check_web_demo(root)
    server = make_server(root, host, port)
    click.echo(f"web demo: http://{host}:{server.server_address[1]}/  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@demo_group.command("golden")
@click.argument("out_dir", type=click.Path(file_okay=False))
def demo_golden_command(out_dir) -> None:
    """Write golden preprocessing/top-k/label vectors (golden.json + PNGs) for the demo apps' tests."""
    click.echo(write_golden(out_dir))
