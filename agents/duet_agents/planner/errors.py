"""Why a plan cannot be made; each carries what the user needs to fix it."""

from __future__ import annotations

import math


class PlanningError(ValueError):
    """The requirements cannot be met as asked. `reason` is a condition reason (CamelCase)."""

    reason = "PlanningFailed"


class BudgetInfeasibleError(PlanningError):
    """The cheapest design that meets the requirements costs more than the budget."""

    reason = "BudgetInfeasible"

    def __init__(self, minimum_monthly_usd: float, budget_monthly_usd: float) -> None:
        self.minimum_monthly_usd = minimum_monthly_usd
        self.budget_monthly_usd = budget_monthly_usd
        super().__init__(
            f"the cheapest design that meets the requirements costs "
            f"${minimum_monthly_usd:,.0f}/month, over the budget of "
            f"${budget_monthly_usd:,.0f}/month: raise spec.budget.monthlyUSD to at least "
            f"{math.ceil(minimum_monthly_usd)} or relax spec.requirements"
        )
