"""API Priority and Fairness (flowcontrol.apiserver.k8s.io/v1), as kube-apiserver 1.31 does it.

* `config`: upstream's mandatory and suggested FlowSchemas and PriorityLevelConfigurations;
* `ensurer`: keeps them in the cluster (upstream's config-producer post-start hook);
* `match`: FlowSchemas compiled once per configuration, and the classification of a request;
* `queueset`: one priority level's seats and queues (shuffle sharding, fair dispatch, rejection);
* `controller`: the configuration the filter uses, rebuilt from the watch caches (seats split by
  nominalConcurrencyShares, the FlowSchemas' `Dangling` condition), and the gate every request
  passes between authentication and authorization (`FlowControl.admit`).

The API objects themselves are stored and validated by apiserver/registry/flowcontrol.py.
"""
