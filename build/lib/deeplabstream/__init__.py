"""DeepLabStream: closed-loop behavioural experiments in real time."""
