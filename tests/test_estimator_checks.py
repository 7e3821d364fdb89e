"""scikit-learn's estimator checks, for both estimators with their defaults and for every algorithm."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from autometa import FewShotClassifier, FewShotRegressor

# Small networks and few inner steps keep the checks fast; the inner loops are
# long and large enough to fit the checks' data sets without meta-training.
SMALL = {"hidden": (16,), "device": "cpu"}
ESTIMATORS = [
    FewShotClassifier(),  # the defaults, as they are
    FewShotRegressor(),
    FewShotClassifier(algorithm="protonet", **SMALL),
    FewShotClassifier(algorithm="matching", **SMALL),
    FewShotClassifier(algorithm="protonet", backbone="skip_mlp", **SMALL),
    FewShotClassifier(algorithm="maml", inner_steps=10, **SMALL),
    FewShotClassifier(algorithm="fomaml", inner_steps=10, **SMALL),
    FewShotClassifier(algorithm="reptile", inner_lr=0.05, inner_steps=10, **SMALL),
    FewShotRegressor(algorithm="maml", inner_lr=0.1, inner_steps=50, **SMALL),
    FewShotRegressor(algorithm="fomaml", inner_lr=0.1, inner_steps=50, **SMALL),
    FewShotRegressor(algorithm="reptile", inner_lr=0.1, inner_steps=50, **SMALL),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
