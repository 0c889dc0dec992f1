"""minik8s scheduler: assigns pending pods to nodes, as kube-scheduler does.

Modules: app (the daemon: informers, health/metrics, leader election), scheduler (the
scheduling loop, binding, failure handling), algorithm (filter → score → pick),
framework (plugin extension points), plugins/ (one file per plugin), queue (active /
backoff / unschedulable + nominator), cache (nodes and bound/assumed pods), eventhandlers
(informer events → cache and queue), podinfo / nodeinfo (parsed pods and nodes), status
(results and the FitError message), metrics, launch (`scheduler_command(cfg)` for minictl).
Node affinity and taint matching (upstream's component-helpers) live in apimachinery, shared
with the kubelet's admission and the DaemonSet controller.
"""
