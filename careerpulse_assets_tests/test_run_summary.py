"""make run's summary says what happened in the run, not what knn_classifier expected."""

from careerpulse_assets.run import _champion

V2 = "models:/careerpulse-knn-category/2"


def test_the_champion_line_says_whether_the_handover_happened_in_this_run():
    waiting = {"champion": f"{V2} once the quality gate passes"}
    assert _champion(waiting, {"knn_classifier", "imputed_silver"}) == (
        f"{V2} (made champion in this run: the quality gate passed)")
    assert _champion(waiting, {"knn_classifier"}) == (
        f"{V2} not yet: imputed_silver was not written in this run, so no handover")
    assert _champion({"champion": V2}, {"knn_classifier"}) == V2
