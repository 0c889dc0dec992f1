"""What every kubectl-like verb shares: connection flags, the per-invocation session, resource
arguments, and kubectl's way of reporting errors (the server's Status message, exit 1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import click

from apimachinery.errors import StatusError
from apimachinery.jsonpath import JSONPathError
from certs.kubeconfig import KubeconfigError, KubeconfigInfo
from minictl.api import Api, ConnectionFailure, ResourceType, ResourceTypeError
from minictl.kubeconfig import KubeconfigSet
from minictl.manifests import ManifestError
from minictl.printing import OutputError

_META_KEY = "minictl.globals"


class ExitError(Exception):
    """Stop with a message (printed as is) and an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise ExitError(message if message.startswith(("error:", "Error", "The ")) else f"error: {message}", code)


def format_status_error(e: StatusError, context: str = "") -> str:
    """kubectl's rendering (cmdutil.CheckErr) of an API error."""
    details = e.details or {}
    if e.code == 422 and e.reason == "Invalid" and details:
        head = "The request is invalid"
        if details.get("kind") or details.get("name"):
            head = f'The {details.get("kind", "")} "{details.get("name", "")}" is invalid'
        causes = details.get("causes") or []
        msgs = [f"{c['field']}: {c.get('message', '')}" if c.get("field") else c.get("message", "") for c in causes]
        if not msgs:
            return head
        if len(msgs) == 1:
            return f"{head}: {msgs[0]}"
        return f"{head}: \n" + "".join(f"* {m}\n" for m in msgs).rstrip("\n")
    message = f"{context}{e.message}"
    if e.reason:
        return f"Error from server ({e.reason}): {message}"
    return f"Error from server: {message}"


def report_errors(ctx: click.Context, call: Callable[[], Any]) -> Any:
    """Run a command body; failures print like kubectl's and exit 1 (or the given code)."""
    try:
        return call()
    except StatusError as e:
        _die(format_status_error(e))
    except ExitError as e:
        _die(e.message, e.code)
    except (ConnectionFailure, ManifestError) as e:
        _die(str(e))
    except (ResourceTypeError, KubeconfigError, OutputError, JSONPathError) as e:
        _die(f"error: {e}")
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        session = ctx.meta.pop("minictl.session", None)
        if session is not None:
            session.close()


class Verb(click.Command):
    """A click command that reports failures like kubectl."""

    def invoke(self, ctx: click.Context) -> Any:
        return report_errors(ctx, lambda: super(Verb, self).invoke(ctx))


class VerbGroup(click.Group):
    """A click group (create, rollout, config...) that reports failures like kubectl; `aliases`
    maps extra subcommand names (create ns → create namespace)."""

    aliases: dict[str, str] = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def invoke(self, ctx: click.Context) -> Any:
        return report_errors(ctx, lambda: super(VerbGroup, self).invoke(ctx))


def _die(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


# --- global (connection) flags: accepted on the root group and on every verb ---------------------


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None and value != () and value is not False:
            ctx.meta.setdefault(_META_KEY, {})[name] = value

    return callback


def global_options() -> list[click.Option]:
    """Fresh Option objects (click options must not be shared between commands)."""
    return [
        click.Option(["--kubeconfig"], metavar="FILE", expose_value=False, callback=_store("kubeconfig"),
                     help="Path to the kubeconfig file (default: $KUBECONFIG, then ~/.minik8s/default/admin.kubeconfig, "
                          "then ~/.kube/config)."),
        click.Option(["--context"], metavar="NAME", expose_value=False, callback=_store("context"),
                     help="The kubeconfig context to use."),
        click.Option(["-n", "--namespace"], metavar="NS", expose_value=False, callback=_store("namespace"),
                     help="The namespace for this request (default: the context's, else 'default')."),
        click.Option(["--request-timeout"], metavar="SECONDS", type=float, expose_value=False,
                     callback=_store("request_timeout"), help="Seconds to wait for a single server request."),
        click.Option(["-v", "--v", "verbosity"], type=int, metavar="LEVEL", expose_value=False,
                     callback=_store("verbosity"), help="Log verbosity: 6 logs requests, 8 request bodies."),
    ]


def with_global_options(f: Callable) -> Callable:
    """Decorator adding the connection flags to a verb (they may also come before the verb)."""
    # click reverses __click_params__ when it builds the command: these end up listed last
    f.__click_params__ = [*reversed(global_options()), *getattr(f, "__click_params__", [])]  # type: ignore[attr-defined]
    return f


def verb(group: click.Group | None = None, name: str | None = None, **kwargs: Any) -> Callable:
    """`@verb()` = a click command of class Verb with the connection flags."""

    def deco(f: Callable) -> click.Command:
        f = with_global_options(f)
        settings = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
        settings.update(kwargs.pop("context_settings", {}))
        maker = group.command if group is not None else click.command
        return maker(name, cls=Verb, context_settings=settings, **kwargs)(f)

    return deco


# --- the session -----------------------------------------------------------------------------------


@dataclass
class Session:
    kubeconfig: str | None = None
    context: str | None = None
    namespace_flag: str | None = None
    request_timeout: float | None = None
    verbosity: int = 0

    @cached_property
    def configs(self) -> KubeconfigSet:
        return KubeconfigSet.load(self.kubeconfig)

    @cached_property
    def info(self) -> KubeconfigInfo:
        return self.configs.info(self.context)

    @cached_property
    def api(self) -> Api:
        return Api(self.info, timeout=self.request_timeout, verbosity=self.verbosity)

    @property
    def namespace(self) -> str:
        if self.namespace_flag:
            return self.namespace_flag
        try:
            return self.info.namespace or "default"
        except KubeconfigError:
            return "default"

    @property
    def namespace_explicit(self) -> bool:
        return bool(self.namespace_flag)

    def close(self) -> None:
        if "api" in self.__dict__:
            self.api.close()


def session() -> Session:
    """The current invocation's session, built from the connection flags."""
    ctx = click.get_current_context()
    existing = ctx.meta.get("minictl.session")
    if existing is not None:
        return existing
    g = ctx.meta.get(_META_KEY, {})
    s = Session(
        kubeconfig=g.get("kubeconfig"),
        context=g.get("context"),
        namespace_flag=g.get("namespace"),
        request_timeout=g.get("request_timeout"),
        verbosity=int(g.get("verbosity") or 0),
    )
    ctx.meta["minictl.session"] = s
    return s


# --- resource arguments ----------------------------------------------------------------------------


@dataclass
class Target:
    """One resource type and the names asked for (empty: all of them)."""

    rtype: ResourceType
    names: list[str]
    namespace: str | None = None  # from a file's object; else the session's


def parse_resource_args(api: Api, args: tuple[str, ...] | list[str], allow_all: bool = True) -> list[Target]:
    """`TYPE [NAME...]`, `TYPE1,TYPE2 [NAME...]`, `TYPE/NAME [TYPE/NAME...]` (kubectl's forms)."""
    args = list(args)
    if not args:
        fail("You must specify the type of resource to get. Use \"minictl api-resources\" for a complete list of "
             "supported resources.")
    if "/" in args[0]:
        targets: list[Target] = []
        for a in args:
            if "/" not in a:
                fail("there is no need to specify a resource type as a separate argument when passing arguments in "
                     "resource/name form (e.g. 'minictl get resource/<resource_name>' instead of 'minictl get "
                     "resource resource/<resource_name>'")
            type_name, _, name = a.partition("/")
            rtype = api.discovery.resolve(type_name)
            for t in targets:
                if t.rtype == rtype:
                    t.names.append(name)
                    break
            else:
                targets.append(Target(rtype, [name]))
        return targets
    types: list[ResourceType] = []
    for type_name in args[0].split(","):
        if not type_name:
            continue
        if allow_all and type_name in ("all",):
            types += [t for t in api.discovery.category("all") if t not in types]
            continue
        rtype = api.discovery.resolve(type_name)
        if rtype not in types:
            types.append(rtype)
    return [Target(t, list(args[1:])) for t in types]


def kind_of(rtype: ResourceType) -> str:
    return rtype.kind_name


def resource_version_param(obj: dict[str, Any]) -> str:
    return ((obj.get("metadata") or {}).get("resourceVersion")) or ""


def selector_params(selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if selector:
        params["labelSelector"] = selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def namespace_for(rtype: ResourceType, s: Session, all_namespaces: bool = False) -> str | None:
    if not rtype.namespaced or all_namespaces:
        return None
    return s.namespace


def read_text_arg(value: str) -> str:
    if value == "-":
        return sys.stdin.read()
    return Path(value).read_text()


def editor_command() -> list[str]:
    import shlex

    for var in ("KUBE_EDITOR", "EDITOR"):
        if os.environ.get(var):
            return shlex.split(os.environ[var])
    return ["vi"]


def kube_bool(name: str, default: bool, help: str, short: str | None = None) -> Callable:
    """A kubectl-style boolean flag: `--name` means true, `--name=false` false."""
    decls = [short, name] if short else [name]
    return click.option(*decls, type=click.BOOL, default=default, is_flag=False, flag_value=True,
                        show_default=True, help=help)


def no_resources_message(s: Session, rtype: ResourceType | None, all_namespaces: bool) -> str:
    if all_namespaces or (rtype is not None and not rtype.namespaced):
        return "No resources found"
    return f"No resources found in {s.namespace} namespace."


def echo(text: str = "", nl: bool = True, err: bool = False) -> None:
    click.echo(text, nl=nl, err=err)
