"""scikit-learn estimators for few-shot learning: ``FewShotClassifier`` and ``FewShotRegressor``.

:mod:`~autometa.estimators.sklearn_api` defines both estimators;
:mod:`~autometa.estimators.validated` and
:mod:`~autometa.estimators.validated_regression` hold the validated choice
behind their default ``algorithm="auto"``.
"""

from autometa.estimators.sklearn_api import FewShotClassifier, FewShotRegressor

__all__ = ["FewShotClassifier", "FewShotRegressor"]
