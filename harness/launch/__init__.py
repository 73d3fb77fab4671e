"""Workers of one study handed to a cluster's scheduler: Ray, Kubernetes or Slurm."""
