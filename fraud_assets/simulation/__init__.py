"""Synthetic card transactions following the generative process of DESIGN.md §3.5."""

from fraud_assets.simulation.generator import SimulatedDay, TransactionSimulator
from fraud_assets.simulation.params import FraudScenarios, SimulationParams

__all__ = ["FraudScenarios", "SimulatedDay", "SimulationParams", "TransactionSimulator"]
