"""minictl's kubectl-like verbs; `register(cli)` adds them (and the connection flags) to the root group."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from minictl.completion import completion_cmd
    from minictl.verbs.apply import apply_cmd
    from minictl.verbs.common import global_options
    from minictl.verbs.config import config_group
    from minictl.verbs.create import create_cmd
    from minictl.verbs.delete import delete_cmd
    from minictl.verbs.describe import describe_cmd
    from minictl.verbs.edit import edit_cmd
    from minictl.verbs.extras import certs_group, image_group, node_group
    from minictl.verbs.get import get_cmd
    from minictl.verbs.info import api_resources_cmd, api_versions_cmd, top_group, version_cmd
    from minictl.verbs.metadata import annotate_cmd, label_cmd
    from minictl.verbs.pods import attach_cmd, exec_cmd, logs_cmd, port_forward_cmd
    from minictl.verbs.token import token_group
    from minictl.verbs.workloads import rollout_group, scale_cmd

    # The connection flags may also come before the verb (minictl --kubeconfig F get pods).
    cli.params.extend(global_options())
    for command in (
        get_cmd, describe_cmd, create_cmd, apply_cmd, delete_cmd, edit_cmd, label_cmd, annotate_cmd,
        scale_cmd, rollout_group, logs_cmd, exec_cmd, attach_cmd, port_forward_cmd, top_group,
        api_resources_cmd, api_versions_cmd, version_cmd, config_group, image_group, certs_group, node_group,
        token_group, completion_cmd,
    ):
        cli.add_command(command)
