"""Synthetic card transactions following the generative process of docs/simulator.md."""

from fraud_assets.simulation.generator import SimulatedDay, TransactionSimulator
from fraud_assets.simulation.params import FraudScenarios, SimulationParams

__all__ = ["FraudScenarios", "SimulatedDay", "SimulationParams", "TransactionSimulator"]
