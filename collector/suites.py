"""Named evaluation suites (AgentEval-style): per env, a fixed list of test task ids, and running one.

A suite pins the exact tasks a model is scored on, so scores of different models and
days compare. `builtin` suites name test tasks of the env's built-in data (what
`trajgym serve NAME` serves without --data-dir); `published` suites name test tasks of
the published benchmark data (`trajgym serve NAME --data-dir shared/data/<env>`),
chosen once by hashing the ids. A suite may also be given as a YAML/JSON file with
the `Suite` fields. `run_suite` collects one run of a model on every task of a suite
through the collector engine, then scores it from the stored rows into one report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    env: str = Field(min_length=1, description="env name the service must report (EnvInfo.name)")
    data: Literal["builtin", "published", "custom"] = "custom"
    description: str = ""
    split: Literal["train", "dev", "test"] = "test"
    task_ids: list[str] = Field(min_length=1)
    samples: int = Field(default=1, ge=1, description="samples per task (pass@k needs several)")

    @field_validator("task_ids")
    @classmethod
    def _unique(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) != len(ids):
            raise ValueError("a suite lists each task id once")
        return ids


_DEFINITIONS = [
    Suite(name="webshop-builtin-test", env="webshop", data="builtin",
          description="every test task of the built-in WebShop data",
          task_ids=[
        "webshop-0", "webshop-1", "webshop-2", "webshop-3", "webshop-4", "webshop-5", "webshop-6", "webshop-7",
        "webshop-8", "webshop-9", "webshop-10", "webshop-11", "webshop-12", "webshop-13", "webshop-14", "webshop-15",
        "webshop-16", "webshop-17", "webshop-18", "webshop-19", "webshop-20", "webshop-21", "webshop-22",
          ]),
    Suite(name="household-builtin-test", env="household", data="builtin",
          description="every test task of the built-in household (ALFWorld-like) data",
          task_ids=[
        "gen-00000", "gen-00001", "gen-00002", "gen-00003", "gen-00004", "gen-00005", "gen-00060", "gen-00061",
        "gen-00062", "gen-00063", "gen-00064", "gen-00065", "gen-00120", "gen-00121", "gen-00122", "gen-00123",
        "gen-00124", "gen-00125", "gen-00180", "gen-00181", "gen-00182", "gen-00183", "gen-00184", "gen-00185",
        "gen-00240", "gen-00241", "gen-00242", "gen-00243", "gen-00244", "gen-00245", "gen-00300", "gen-00301",
        "gen-00302", "gen-00303", "gen-00304", "gen-00305", "gen-00360", "gen-00361", "gen-00362", "gen-00363",
        "gen-00364", "gen-00365", "gen-00420", "gen-00421", "gen-00422", "gen-00423", "gen-00424", "gen-00425",
        "gen-00480", "gen-00481", "gen-00482", "gen-00483", "gen-00484", "gen-00485", "gen-00540", "gen-00541",
        "gen-00542", "gen-00543", "gen-00544", "gen-00545",
          ]),
    Suite(name="sql-builtin-test", env="sql", data="builtin",
          description="every test task of the built-in SQL data",
          task_ids=[
        "builtin-company-count_dept-00", "builtin-company-count_dept-05", "builtin-company-avg_title-01",
        "builtin-company-hired_after-04", "builtin-company-top_earners-04", "builtin-company-project_hours-02",
        "builtin-company-project_hours-07", "builtin-company-project_hours-12", "builtin-company-project_members-00",
        "builtin-company-project_members-05", "builtin-company-active_projects-00",
        "builtin-company-active_projects-05", "builtin-company-busy-01", "builtin-company-single-04",
        "builtin-company-hire-01", "builtin-company-hire-06", "builtin-company-raise-00", "builtin-company-raise-05",
        "builtin-company-cancel_project-01", "builtin-company-cancel_project-06",
        "builtin-company-complete_project-04", "builtin-shop-orders_of-01", "builtin-shop-orders_of-06",
        "builtin-shop-sold-01", "builtin-shop-sold-06", "builtin-shop-cheap-00", "builtin-shop-cheap-05",
        "builtin-shop-new_customers-02", "builtin-shop-new_customers-07", "builtin-shop-revenue-03",
        "builtin-shop-buyers-04", "builtin-shop-single-04", "builtin-shop-add_product-04",
        "builtin-shop-discount-02", "builtin-shop-purge_cancelled-00", "builtin-shop-restock-03",
          ]),
    Suite(name="qa-builtin-test", env="qa", data="builtin",
          description="every test task of the built-in QA data",
          task_ids=[
        "builtin-001", "builtin-005", "builtin-009", "builtin-013", "builtin-017", "builtin-021", "builtin-025",
        "builtin-029", "builtin-033", "builtin-037", "builtin-041", "builtin-045",
          ]),
    Suite(name="webshop-test-100", env="webshop", data="published",
          description="100 test goals of the published WebShop data (items_ins_v2_1000)",
          task_ids=[
        "webshop-2", "webshop-4", "webshop-8", "webshop-9", "webshop-21", "webshop-31", "webshop-35", "webshop-42",
        "webshop-44", "webshop-46", "webshop-47", "webshop-49", "webshop-53", "webshop-56", "webshop-58",
        "webshop-60", "webshop-61", "webshop-72", "webshop-74", "webshop-76", "webshop-77", "webshop-80",
        "webshop-81", "webshop-82", "webshop-90", "webshop-91", "webshop-96", "webshop-98", "webshop-103",
        "webshop-105", "webshop-106", "webshop-107", "webshop-128", "webshop-132", "webshop-135", "webshop-139",
        "webshop-141", "webshop-157", "webshop-165", "webshop-166", "webshop-168", "webshop-174", "webshop-179",
        "webshop-188", "webshop-192", "webshop-197", "webshop-200", "webshop-201", "webshop-202", "webshop-203",
        "webshop-211", "webshop-213", "webshop-218", "webshop-240", "webshop-244", "webshop-251", "webshop-259",
        "webshop-267", "webshop-272", "webshop-282", "webshop-289", "webshop-292", "webshop-294", "webshop-295",
        "webshop-297", "webshop-307", "webshop-310", "webshop-315", "webshop-318", "webshop-320", "webshop-323",
        "webshop-331", "webshop-332", "webshop-333", "webshop-341", "webshop-346", "webshop-347", "webshop-353",
        "webshop-354", "webshop-359", "webshop-363", "webshop-373", "webshop-374", "webshop-394", "webshop-404",
        "webshop-406", "webshop-409", "webshop-430", "webshop-431", "webshop-440", "webshop-444", "webshop-445",
        "webshop-457", "webshop-465", "webshop-471", "webshop-474", "webshop-476", "webshop-480", "webshop-482",
        "webshop-493",
          ]),
    Suite(name="household-test-60", env="household", data="published",
          description="60 test games of the published ALFWorld data (valid_seen)",
          task_ids=[
        "valid_seen/look_at_obj_in_light-Box-None-DeskLamp-205/trial_T20190907_074425_330493",
        "valid_seen/look_at_obj_in_light-CD-None-DeskLamp-302/trial_T20190907_154618_526741",
        "valid_seen/look_at_obj_in_light-CD-None-DeskLamp-314/trial_T20190907_114323_767231",
        "valid_seen/look_at_obj_in_light-KeyChain-None-DeskLamp-327/trial_T20190906_202601_548273",
        "valid_seen/pick_and_place_simple-Book-None-Sofa-229/trial_T20190907_042856_259139",
        "valid_seen/pick_and_place_simple-Candle-None-Cart-401/trial_T20190909_081908_677973",
        "valid_seen/pick_and_place_simple-Candle-None-Toilet-429/trial_T20190908_052232_887934",
        "valid_seen/pick_and_place_simple-CellPhone-None-Bed-324/trial_T20190907_233817_198528",
        "valid_seen/pick_and_place_simple-Mug-None-Dresser-311/trial_T20190909_152837_739016",
        "valid_seen/pick_and_place_simple-Mug-None-SideTable-329/trial_T20190909_032318_169393",
        "valid_seen/pick_and_place_simple-Mug-None-SideTable-329/trial_T20190909_032340_274147",
        "valid_seen/pick_and_place_simple-Newspaper-None-Sofa-224/trial_T20190909_111324_949106",
        "valid_seen/pick_and_place_simple-Pencil-None-Desk-310/trial_T20190909_113054_894334",
        "valid_seen/pick_and_place_simple-RemoteControl-None-ArmChair-230/trial_T20190909_021000_274398",
        "valid_seen/pick_and_place_simple-RemoteControl-None-Sofa-207/trial_T20190909_153609_373481",
        "valid_seen/pick_and_place_simple-SoapBottle-None-Cabinet-414/trial_T20190908_110131_524518",
        "valid_seen/pick_and_place_simple-SprayBottle-None-Cabinet-413/trial_T20190907_114931_692464",
        "valid_seen/pick_and_place_simple-SprayBottle-None-Toilet-415/trial_T20190909_075955_678702",
        "valid_seen/pick_and_place_simple-ToiletPaper-None-ToiletPaperHanger-415/trial_T20190908_050518_595510",
        "valid_seen/pick_and_place_simple-Vase-None-CoffeeTable-207/trial_T20190909_091246_807206",
        "valid_seen/pick_and_place_simple-WineBottle-None-Shelf-7/trial_T20190907_200154_378982",
        "valid_seen/pick_clean_then_place_in_recep-ButterKnife-None-CounterTop-8/trial_T20190909_105559_983897",
        "valid_seen/pick_clean_then_place_in_recep-ButterKnife-None-Drawer-2/trial_T20190908_121728_511866",
        "valid_seen/pick_clean_then_place_in_recep-ButterKnife-None-Drawer-8/trial_T20190909_124425_112757",
        "valid_seen/pick_clean_then_place_in_recep-DishSponge-None-Cart-401/trial_T20190907_024634_972453",
        "valid_seen/pick_clean_then_place_in_recep-Ladle-None-DiningTable-16/trial_T20190909_183724_205399",
        "valid_seen/pick_clean_then_place_in_recep-Ladle-None-DiningTable-27/trial_T20190911_131350_027076",
        "valid_seen/pick_clean_then_place_in_recep-Ladle-None-DiningTable-4/trial_T20190909_164840_568811",
        "valid_seen/pick_clean_then_place_in_recep-Lettuce-None-CounterTop-16/trial_T20190909_051630_092360",
        "valid_seen/pick_clean_then_place_in_recep-SoapBar-None-Cabinet-402/trial_T20190908_055221_984342",
        "valid_seen/pick_clean_then_place_in_recep-SoapBar-None-Toilet-410/trial_T20190906_201106_979461",
        "valid_seen/pick_clean_then_place_in_recep-Spatula-None-DiningTable-4/trial_T20190909_002804_564168",
        "valid_seen/pick_cool_then_place_in_recep-Apple-None-CounterTop-14/trial_T20190909_044933_815840",
        "valid_seen/pick_cool_then_place_in_recep-Apple-None-GarbageCan-2/trial_T20190906_195943_081289",
        "valid_seen/pick_cool_then_place_in_recep-Bowl-None-Cabinet-20/trial_T20190909_112912_154874",
        "valid_seen/pick_cool_then_place_in_recep-Bread-None-CounterTop-7/trial_T20190909_045605_307949",
        "valid_seen/pick_cool_then_place_in_recep-Cup-None-Microwave-17/trial_T20190906_192817_654400",
        "valid_seen/pick_cool_then_place_in_recep-Cup-None-SideTable-21/trial_T20190906_192823_237997",
        "valid_seen/pick_cool_then_place_in_recep-Egg-None-Microwave-24/trial_T20190908_234112_645480",
        "valid_seen/pick_cool_then_place_in_recep-Pan-None-DiningTable-7/trial_T20190908_232648_241836",
        "valid_seen/pick_cool_then_place_in_recep-Pan-None-StoveBurner-23/trial_T20190906_215856_374127",
        "valid_seen/pick_cool_then_place_in_recep-Tomato-None-CounterTop-12/trial_T20190909_063754_216554",
        "valid_seen/pick_cool_then_place_in_recep-Tomato-None-GarbageCan-6/trial_T20190909_082934_483899",
        "valid_seen/pick_cool_then_place_in_recep-Tomato-None-Microwave-18/trial_T20190909_012524_159092",
        "valid_seen/pick_cool_then_place_in_recep-WineBottle-None-DiningTable-17/trial_T20190908_024426_412044",
        "valid_seen/pick_heat_then_place_in_recep-Cup-None-Cabinet-22/trial_T20190907_173251_960848",
        "valid_seen/pick_heat_then_place_in_recep-Mug-None-CoffeeMachine-1/trial_T20190907_222640_487432",
        "valid_seen/pick_heat_then_place_in_recep-Potato-None-Fridge-11/trial_T20190909_011341_436523",
        "valid_seen/pick_heat_then_place_in_recep-Tomato-None-DiningTable-16/trial_T20190907_201243_698086",
        "valid_seen/pick_heat_then_place_in_recep-Tomato-None-Fridge-24/trial_T20190908_033721_967359",
        "valid_seen/pick_two_obj_and_place-Book-None-Desk-302/trial_T20190906_181233_363875",
        "valid_seen/pick_two_obj_and_place-CD-None-Drawer-304/trial_T20190907_230232_832893",
        "valid_seen/pick_two_obj_and_place-CreditCard-None-Safe-323/trial_T20190907_001129_214240",
        "valid_seen/pick_two_obj_and_place-Glassbottle-None-Shelf-1/trial_T20190907_122204_941737",
        "valid_seen/pick_two_obj_and_place-SprayBottle-None-GarbageCan-419/trial_T20190908_164236_518264",
        "valid_seen/pick_two_obj_and_place-TissueBox-None-Toilet-426/trial_T20190909_044602_338962",
        "valid_seen/pick_two_obj_and_place-ToiletPaper-None-Drawer-423/trial_T20190907_111251_461099",
        "valid_seen/pick_two_obj_and_place-ToiletPaper-None-Toilet-408/trial_T20190909_080302_174780",
        "valid_seen/pick_two_obj_and_place-Vase-None-Desk-204/trial_T20190906_181531_703961",
        "valid_seen/pick_two_obj_and_place-Watch-None-Dresser-205/trial_T20190907_182211_592010",
          ]),
    Suite(name="sql-test-100", env="sql", data="published",
          description="100 test tasks of the published Spider + AgentBench DB-bench data",
          task_ids=[
        "spider-car_1-0013", "spider-poker_player-0018", "spider-flight_2-0022", "spider-flight_2-0036",
        "spider-flight_2-0059", "spider-wta_1-0060", "spider-car_1-0070", "spider-student_transcripts_tracking-0078",
        "spider-car_1-0079", "spider-world_1-0101", "spider-world_1-0103", "spider-poker_player-0121",
        "spider-pets_1-0125", "spider-student_transcripts_tracking-0136", "spider-student_transcripts_tracking-0138",
        "spider-cre_Doc_Template_Mgt-0139", "spider-car_1-0168", "spider-singer-0170", "spider-world_1-0171",
        "spider-wta_1-0172", "spider-cre_Doc_Template_Mgt-0178", "spider-poker_player-0185",
        "spider-poker_player-0197", "spider-world_1-0208", "spider-concert_singer-0218", "spider-flight_2-0235",
        "spider-singer-0243", "spider-world_1-0253", "spider-cre_Doc_Template_Mgt-0293",
        "spider-employee_hire_evaluation-0296", "spider-world_1-0297", "spider-singer-0299", "spider-car_1-0308",
        "spider-employee_hire_evaluation-0323", "spider-world_1-0341", "spider-student_transcripts_tracking-0343",
        "spider-network_1-0350", "spider-course_teach-0365", "spider-student_transcripts_tracking-0369",
        "spider-world_1-0382", "spider-pets_1-0420", "spider-car_1-0436", "spider-singer-0446",
        "spider-employee_hire_evaluation-0469", "spider-world_1-0485", "spider-wta_1-0488",
        "spider-employee_hire_evaluation-0508", "spider-car_1-0530", "spider-car_1-0539", "spider-network_1-0549",
        "spider-course_teach-0554", "spider-course_teach-0563", "spider-cre_Doc_Template_Mgt-0578",
        "spider-world_1-0583", "spider-flight_2-0606", "spider-singer-0622", "spider-course_teach-0627",
        "spider-singer-0641", "spider-cre_Doc_Template_Mgt-0645", "spider-flight_2-0666", "spider-world_1-0676",
        "spider-concert_singer-0697", "spider-world_1-0729", "spider-battle_death-0735", "spider-network_1-0737",
        "spider-student_transcripts_tracking-0760", "spider-student_transcripts_tracking-0774", "spider-pets_1-0787",
        "spider-pets_1-0792", "spider-cre_Doc_Template_Mgt-0816", "dbbench-standard-005", "dbbench-standard-010",
        "dbbench-standard-011", "dbbench-standard-012", "dbbench-standard-032", "dbbench-standard-037",
        "dbbench-standard-066", "dbbench-standard-082", "dbbench-standard-084", "dbbench-standard-087",
        "dbbench-standard-092", "dbbench-standard-098", "dbbench-standard-102", "dbbench-standard-107",
        "dbbench-standard-113", "dbbench-standard-116", "dbbench-standard-122", "dbbench-standard-138",
        "dbbench-standard-140", "dbbench-standard-143", "dbbench-standard-181", "dbbench-standard-189",
        "dbbench-standard-190", "dbbench-standard-196", "dbbench-standard-217", "dbbench-standard-232",
        "dbbench-standard-237", "dbbench-standard-238", "dbbench-standard-270", "dbbench-standard-285",
          ]),]

SUITES: dict[str, Suite] = {s.name: s for s in _DEFINITIONS}


class UnknownSuite(LookupError):
    pass


def get_suite(ref: str) -> Suite:
    """A registered suite by name, or a suite file (YAML or JSON) by path."""
    if ref in SUITES:
        return SUITES[ref]
    path = Path(ref)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return Suite.model_validate(data)
    raise UnknownSuite(f"unknown suite {ref!r}; registered: {', '.join(SUITES)} (or give a .yaml/.json suite file)")


def suites_for(env: str) -> list[Suite]:
    return [s for s in SUITES.values() if s.env == env]


def default_run_name(suite: Suite, model_name: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    tag = (model_name or "model").replace("/", "_")
    return f"suite-{suite.name}-{tag}-{stamp}"


class SuiteError(Exception):
    """The suite cannot run against this service (another env, or task ids it does not have)."""


class TaskResult(BaseModel):
    task_id: str
    split: str
    samples: int          # scored samples
    successes: int
    mean_reward: float | None
    infra_errors: int
    unfinished: int
    env_errors: int = 0   # among `samples`, as not solved


class SuiteReport(BaseModel):
    """One report of a model on a suite: scores per split, per-task results, what is missing."""

    suite: str
    env: str
    description: str
    tasks: int
    samples: int
    run: str
    run_id: int
    model: str | None
    policy: str
    prompt_format: str
    written_at: str
    complete: bool                 # every task × sample finished (infra errors count as finished)
    scores: list[Any]              # store.scoring.SplitScore rows (JSON)
    per_task: list[TaskResult]
    missing: list[str]             # suite tasks without a single scored sample


def suite_report(store: Any, suite: Suite, run_name: str) -> SuiteReport:
    """Build the report of a stored run of a suite from the store's rows alone."""
    from store.scoring import score_tallies, task_tallies

    run = store.get_run(run_name)
    tallies = task_tallies(store, run["id"])
    by_task = {t.task_id: t for t in tallies}
    per_task = [TaskResult(task_id=t.task_id, split=t.split, samples=t.scored, successes=t.successes,
                           mean_reward=t.reward_sum / t.scored if t.scored else None, infra_errors=t.infra_errors,
                           unfinished=t.unfinished, env_errors=t.env_errors)
                for t in (by_task[i] for i in suite.task_ids if i in by_task)]
    return SuiteReport(
        suite=suite.name, env=suite.env, description=suite.description, tasks=len(suite.task_ids),
        samples=run["total_episodes"] // max(1, len(suite.task_ids)), run=run_name, run_id=run["id"],
        model=run["model"], policy=run["policy"], prompt_format=run["prompt_format"],
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        complete=all(t.unfinished == 0 for t in tallies) and len(by_task) == len(suite.task_ids),
        scores=[s.model_dump(mode="json") for s in score_tallies(tallies)], per_task=per_task,
        missing=[i for i in suite.task_ids if i not in by_task or by_task[i].scored == 0])


async def check_service(suite: Suite, env_url: str) -> None:
    """The service must be the suite's env and hold every suite task in the suite's split."""
    from collector.config import resolve_env_url
    from collector.envlink import EnvLink

    link = EnvLink(resolve_env_url(env_url), concurrency=4, timeout=60.0)
    try:
        info = await link.info()
        if info.name != suite.env:
            raise SuiteError(f"suite {suite.name!r} is for env {suite.env!r}, the service at {env_url} is {info.name!r}")
        known = {t for t, _ in await link.task_list(suite.split)}
    finally:
        await link.aclose()
    missing = [t for t in suite.task_ids if t not in known]
    if missing:
        hint = " (a published-data suite needs the service started with --data-dir)" if suite.data == "published" else ""
        raise SuiteError(f"{len(missing)} task(s) of suite {suite.name!r} are not in the service's {suite.split} "
                         f"split, e.g. {missing[:3]}{hint}")


async def run_suite(suite: Suite, job: Any, *, resume: bool = True) -> SuiteReport:
    """Collect `job` (a JobConfig whose split/task_ids/samples are set from the suite) and report it.

    With `resume` (default) an existing run of the same name and job continues instead of failing."""
    from collector.collect import Collector
    from store import Store

    await check_service(suite, job.env)
    await Collector(job, resume=resume).run()
    store = Store(job.store)
    try:
        return suite_report(store, suite, job.run_name)
    finally:
        store.close()


def job_for_suite(suite: Suite, settings: dict[str, Any]) -> Any:
    """A JobConfig for the suite: its split, task ids and samples, plus the caller's settings (None = default)."""
    from collector.config import JobConfig

    data = {k: v for k, v in settings.items() if v is not None}
    data.update(split=suite.split, task_ids=list(suite.task_ids))
    data.setdefault("samples", suite.samples)
    data.setdefault("run_name", default_run_name(suite, data.get("model_name")))
    return JobConfig.model_validate(data)
