"""The kubelet: the node agent, on the cluster's own containerd through CRI.

    minik8s-kubelet --kubeconfig kubelet-<node>.kubeconfig --container-runtime-endpoint unix://...
    kubelet.launch.kubelet_command(cluster_config)   # how `minictl cluster up` starts it

Modules, by job:
- kubelet.py       the Kubelet: pod sources, the per-pod sync (admit, cgroup, volumes, sandbox,
                   init containers, containers, kills), termination and deletion, housekeeping,
                   container GC, mirror pods, network setup
- podactions.py    what a sync must do (upstream computePodActions) — pure
- podstatus.py     the API status from the runtime's view (phase, conditions, states) — pure
- podworkers.py    one worker per pod; pleg.py relists CRI every second; runtime.py reads CRI
- status.py        writes pod statuses (merge patch, only on change)
- nodestatus.py    Node registration, status and the Lease heartbeat
- containerconfig.py  CRI sandbox/container configs (DNS, hosts, security, resources, labels)
- envvars.py, downward.py  container environments and the downward API
- volumes.py, objectcache.py, tokens.py  volumes, watched ConfigMaps/Secrets, SA tokens
- images.py        pull policy, pull secrets, back-off, image GC
- logrotation.py   container log rotation (size, gzip, max files; ReopenContainerLog)
- probes.py, actions.py  probes and lifecycle hooks (exec, httpGet, tcpSocket, grpc, sleep)
- backoff.py       CrashLoopBackOff and pull back-off
- qos.py, cgroups.py  QoS classes and pod-level cgroups
- eviction.py      node-pressure eviction; machine.py  what the node has and uses
- network.py       CNI config and the pod-CIDR filter rules
- staticpods.py    manifests → static pods → mirror pods
- server.py, auth.py, logs.py, streaming.py, spdy.py, stats.py  the HTTPS API (10250)
- config.py, configfile.py  the settings (flags) and their validation; the --config
                   KubeletConfiguration file and --config-dir drop-ins mapped onto the flags
- cri/             the CRI client and the cluster's containerd (config, start, stop)
"""
