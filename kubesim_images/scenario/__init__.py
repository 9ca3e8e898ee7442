"""Load-testing scenarios: a workload of nodes, pods and images replayed in virtual time."""
