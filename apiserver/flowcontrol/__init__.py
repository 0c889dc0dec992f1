"""API Priority and Fairness (flowcontrol.apiserver.k8s.io/v1), as kube-apiserver 1.31 does it.

* `config`: upstream's mandatory and suggested FlowSchemas and PriorityLevelConfigurations.

The API objects themselves are stored and validated by apiserver/registry/flowcontrol.py.
"""
