"""Small Muse-shaped postings made for the tests, so a fresh clone needs no shared data.

Each category has its own vocabulary, as real postings do, so a working classifier learns it;
`shuffle_labels=True` breaks the link between text and label to make a deliberately bad model.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

VOCABULARY = {
    "Software Engineering": (
        ["Backend Engineer", "Software Engineer", "Platform Developer", "Frontend Engineer"],
        ["python", "kubernetes", "microservices", "code review", "APIs", "distributed systems",
         "unit tests", "deployments", "TypeScript", "databases"],
    ),
    "Healthcare": (
        ["Registered Nurse", "Clinical Nurse", "Medical Assistant", "Physical Therapist"],
        ["patients", "clinic", "nursing", "care plans", "medication", "hospital ward",
         "bedside", "triage", "physicians", "CPR certification"],
    ),
    "Sales": (
        ["Account Executive", "Sales Representative", "Business Development Rep",
         "Sales Manager"],
        ["quota", "pipeline", "prospects", "closing deals", "CRM", "cold calls", "commission",
         "territory", "revenue targets", "client meetings"],
    ),
}
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"]
START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def make_item(posting_id: int, title: str, words: list[str], category: str | None,
              published: datetime, company: str) -> dict:
    sentences = "".join(f"<li>Experience with {w} &amp; related work.</li>" for w in words)
    return {
        "id": posting_id,
        "name": title,
        "contents": f"<p><strong>{title}</strong> at {company}.</p><ul>{sentences}</ul>",
        "publication_date": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "categories": [{"name": category}] if category else [],
        "levels": [{"name": "Mid Level", "short_name": "mid"}],
        "locations": [{"name": "New York, NY"}],
        "company": {"id": COMPANIES.index(company) + 1, "short_name": company.lower(),
                    "name": company},
        "refs": {"landing_page": f"https://www.themuse.com/jobs/{company.lower()}/{posting_id}"},
        "short_name": f"job-{posting_id}", "tags": [], "type": "external", "model_type": "jobs",
    }


def synthetic_postings(per_category: int = 14, unlabelled: int = 12, seed: int = 7,
                       shuffle_labels: bool = False, first_id: int = 100_000) -> list[dict]:
    """Labelled postings for every category plus some with no category, over ~3 weeks."""
    rng = random.Random(seed)
    specs = []
    for category in VOCABULARY:
        for _ in range(per_category):
            specs.append((category, category))
        specs += [(category, None)] * (unlabelled // len(VOCABULARY))
    labels = [label for _, label in specs]
    if shuffle_labels:
        labelled = [label for label in labels if label]
        rng.shuffle(labelled)
        it = iter(labelled)
        labels = [next(it) if label else None for label in labels]
    items = []
    for offset, ((text_category, _), label) in enumerate(zip(specs, labels, strict=True)):
        titles, words = VOCABULARY[text_category]
        items.append(
            make_item(
                first_id + offset,
                rng.choice(titles),
                rng.sample(words, 5),
                label,
                START + timedelta(days=rng.randrange(0, 21), hours=rng.randrange(0, 12)),
                rng.choice(COMPANIES),
            )
        )
    return items


# Words any job ad may use: they blur the categories a little, as real ads do.
GENERIC_WORDS = ["teamwork", "communication", "benefits", "remote", "growth", "deadlines",
                 "stakeholders", "reporting", "excel", "travel", "training", "schedule"]


def imbalanced_postings(counts: dict[str, int], unlabelled: int = 6, seed: int = 3,
                        first_id: int = 300_000) -> list[dict]:
    """Postings in `counts` per category (one common, some rare), each with 3 words of its
    category and 4 generic ones, over ~2 months; `unlabelled` more without a category. A KNN
    that lets the common category outvote the rare ones (k=15, uniform votes, no prior
    correction) is clearly worse here than one chosen by CV."""
    rng = random.Random(seed)
    specs = [(c, c) for c, n in counts.items() for _ in range(n)]
    specs += [(list(counts)[i % len(counts)], None) for i in range(unlabelled)]
    items = []
    for offset, (text_category, label) in enumerate(specs):
        titles, words = VOCABULARY[text_category]
        items.append(make_item(
            first_id + offset, rng.choice(titles),
            rng.sample(words, 3) + rng.sample(GENERIC_WORDS, 4), label,
            START + timedelta(days=rng.randrange(0, 60), hours=rng.randrange(0, 12)),
            rng.choice(COMPANIES),
        ))
    return items


def edge_case_page() -> dict:
    return json.loads((FIXTURES / "page_edge_cases.json").read_text())


def write_archive(folder: Path, items: list[dict], name: str = "postings.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(items))
    return folder


# Postings in Chinese and Japanese (made up for the tests), two categories each. Each clause is
# put together from a lead-in, a duty and a team size, as real ads vary their wording, so no two
# postings share a whole clause, nor a whole title: what they share is words, written without
# spaces between them.
CJK_VOCABULARY = {
    ("zh", "Software Engineering"): (
        ["后端工程师", "软件工程师", "平台开发工程师"],
        ["我们希望你", "你将", "本岗位需要", "加入{company}后"],
        ["负责后端服务的设计与开发", "使用Python和Go编写微服务", "参与代码评审并编写单元测试",
         "维护分布式系统和数据库", "与产品团队合作交付新功能", "优化接口性能与稳定性"],
    ),
    ("zh", "Healthcare"): (
        ["注册护士", "临床护士", "护理专员"],
        ["我们希望你", "你将", "本岗位需要", "加入{company}后"],
        ["负责病人的日常护理工作", "协助医生进行诊疗和给药", "在医院病房轮班值守",
         "制定护理计划并记录病情", "持有心肺复苏证书", "为患者提供健康宣教"],
    ),
    ("ja", "Software Engineering"): (
        ["バックエンドエンジニア", "ソフトウェアエンジニア", "基盤開発エンジニア"],
        ["あなたには", "入社後は", "本ポジションでは", "{company}で"],
        ["バックエンドサービスの設計と開発を担当します", "PythonとGoでマイクロサービスを開発します",
         "コードレビューと単体テストを行います", "分散システムとデータベースを運用します",
         "プロダクトチームと協力して新機能を提供します", "APIの性能と安定性を改善します"],
    ),
    ("ja", "Healthcare"): (
        ["看護師", "正看護師", "病棟看護師"],
        ["あなたには", "入社後は", "本ポジションでは", "{company}で"],
        ["患者さんの日常的な看護を担当します", "医師の診療補助と投薬を行います",
         "病棟でのシフト勤務があります", "看護計画を作成し記録します",
         "心肺蘇生の資格をお持ちの方を歓迎します", "患者さんへの健康指導を行います"],
    ),
}
SENIORITY = {"zh": ["", "高级", "资深", "初级"], "ja": ["", "シニア", "ジュニア", "リード"]}
TEAM = {"zh": "团队共{n}人", "ja": "チームは{n}名です"}


def cjk_postings(per_group: int = 6, seed: int = 11, first_id: int = 700_000) -> list[dict]:
    """`per_group` Chinese and Japanese postings in each of Software Engineering and Healthcare;
    each item's `language` says which ("zh" or "ja")."""
    rng = random.Random(seed)
    items = []
    for (language, category), (titles, leads, duties) in CJK_VOCABULARY.items():
        for _ in range(per_group):
            company = rng.choice(COMPANIES)
            clauses = [rng.choice(leads).format(company=company) + duty
                       + TEAM[language].format(n=rng.randrange(3, 90))
                       for duty in rng.sample(duties, 4)]
            title = rng.choice(SENIORITY[language]) + rng.choice(titles)
            item = make_item(first_id + len(items), title, [], category,
                             START + timedelta(days=rng.randrange(0, 21)), company)
            item["contents"] = f"<p>{'。'.join(clauses)}。</p>"
            item["language"] = language
            items.append(item)
    return items
