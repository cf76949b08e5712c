"""The config: TOML -> Settings -> core values; every problem named with path, value, fix."""

from __future__ import annotations

import os
import pickle
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancer.config import (
    REDACTED,
    ExchangeKeys,
    Settings,
    default_config,
    default_data_dir,
    find_config,
    load_config,
    load_secrets,
    parse_config,
    show_config,
)
from rebalancer.config.secrets import DotenvExposed, mask_url, url_secrets
from rebalancer.core.errors import AuthError, ConfigError
from rebalancer.core.triggers import AllOf, AnyOf, Calendar, Never, Threshold

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
TARGETS = "[targets]\nBTC = 0.40\nETH = 0.30\nSOL = 0.20\nUSDT = 0.10\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value).count("\n  - ") == len(info.value.problems)
    return info.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def assert_problem(problem: str, path: str, found: str, fix: str) -> None:
    assert problem.startswith(f"{path}: "), problem
    assert f"found {found}" in problem, problem
    assert "Fix: " in problem and fix in problem.split("Fix: ", 1)[1], problem


# --- defaults and the example file --------------------------------------------------------------


def test_example_file_parses_and_equals_the_defaults() -> None:
    example = load_config(EXAMPLE)
    assert example == default_config()
    assert load_config(None) == default_config()
    assert example.source == str(EXAMPLE)
    assert default_config().source == "built-in defaults"


def test_defaults_are_the_seed_values() -> None:
    s = default_config()
    assert s.mode == "paper"
    assert s.exchange == "binance"
    assert s.quote == "USDT"
    assert s.targets == {
        "BTC": Decimal("0.4"),
        "ETH": Decimal("0.3"),
        "SOL": Decimal("0.2"),
        "USDT": Decimal("0.1"),
    }
    assert s.strategy().trigger == Threshold(band_abs=Decimal("0.05"), band_rel=None)
    assert s.rebalance.min_trade == 10
    assert s.rebalance.slippage == Decimal("0.001")
    assert s.fees.taker == Decimal("0.001")
    assert s.paper.initial_balances == {"USDT": Decimal(10000)}
    assert s.paper.data_dir is None
    assert s.state_dir == default_data_dir()


def test_numbers_stay_exact_decimals() -> None:
    text = "[targets]\nBTC = 0.7\nUSDT = 0.1\nETH = 0.2\n[trigger]\nband_abs = 0.1\n"
    s = parse_config(text)
    assert str(s.targets["USDT"]) == "0.1"  # a float would leave 0.1000000000000000055...
    assert s.targets["USDT"] == Decimal("0.1")
    assert str(s.strategy().trigger.band_abs) == "0.1"  # type: ignore[attr-defined]
    assert sum(s.targets.values()) == 1
    # more digits than a float holds survive too (a float would round at ~17 digits)
    long = "0.0123456789012345678901"
    s = parse_config(TARGETS + f"[trigger]\nband_abs = {long}\n")
    assert s.trigger.band_abs == Decimal(long)  # type: ignore[union-attr]
    thirds = "[targets]\nBTC = 0.333333333333333333333\nETH = 0.333333333333333333333\n"
    s = parse_config(thirds + "USDT = 0.333333333333333333334\n")
    assert sum(s.targets.values()) == 1


def test_missing_trigger_table_means_threshold_five_points() -> None:
    s = parse_config("[targets]\nBTC = 0.5\nUSDT = 0.5\n")
    assert s.strategy().trigger == Threshold(Decimal("0.05"), None)
    assert parse_config(TARGETS + "[trigger]\nband_rel = 0.25\n").strategy().trigger == (
        Threshold(None, Decimal("0.25"))
    )


def test_asset_codes_are_upper_cased_and_quote_joins_targets_with_zero() -> None:
    s = parse_config('quote = "usdc"\n[targets]\nbtc = 0.6\neth = 0.4\n')
    strategy = s.strategy()
    assert strategy.quote == "USDC"
    assert dict(strategy.targets) == {"BTC": Decimal("0.6"), "ETH": Decimal("0.4"), "USDC": 0}
    assert s.paper.initial_balances == {"USDC": Decimal(10000)}


# --- strategy building -----------------------------------------------------------------------


def test_five_twenty_five_rule_is_one_threshold_with_both_bands() -> None:
    s = parse_config(TARGETS + '[trigger]\nkind = "threshold"\nband_abs = 0.05\nband_rel = 0.25\n')
    assert s.strategy().trigger == Threshold(Decimal("0.05"), Decimal("0.25"))


def test_hybrid_is_all_of_calendar_since_check_and_threshold() -> None:
    s = parse_config(TARGETS + '[trigger]\nkind = "hybrid"\nevery = "1d"\nband_abs = 0.03\n')
    trigger = s.strategy().trigger
    assert isinstance(trigger, AllOf)
    calendar, threshold = trigger.parts
    assert calendar == Calendar(period=timedelta(days=1), cron=None, since="check")
    assert threshold == Threshold(Decimal("0.03"), None)


def test_calendar_with_cron_and_with_periods() -> None:
    s = parse_config(TARGETS + '[trigger]\nkind = "calendar"\ncron = "0 */4 * * *"\n')
    trigger = s.strategy().trigger
    assert isinstance(trigger, Calendar)
    assert trigger.cron is not None and trigger.cron.hours == frozenset(range(0, 24, 4))
    assert trigger.since == "fired"
    for text, period in [("15m", 15), ("4h", 240), ("1w", 7 * 1440), ("30d", 30 * 1440)]:
        s = parse_config(TARGETS + f'[trigger]\nkind = "calendar"\nevery = "{text}"\n')
        assert s.strategy().trigger == Calendar(period=timedelta(minutes=period))


def test_a_weekly_rule_names_its_weekday() -> None:
    text = TARGETS + '[trigger]\nkind = "hybrid"\nevery = "1w"\nweekday = "mon"\n'
    trigger = parse_config(text).strategy().trigger
    assert isinstance(trigger, AllOf)
    calendar = trigger.parts[0]
    assert calendar == Calendar(timedelta(weeks=1), since="check", anchor=timedelta(days=4))
    assert calendar.describe() == "every 1w (Mondays 00:00 UTC)"
    daily = '[trigger]\nkind = "calendar"\nevery = "1d"\nweekday = "mon"\n'
    problem = only_problem(TARGETS + daily)
    assert_problem(problem, "trigger", 'every = "1d"', 'set every = "1w"')


def test_any_of_and_all_of_nest_and_never() -> None:
    text = (
        TARGETS + '[trigger]\nkind = "any_of"\nrules = [ { kind = "calendar", every = "30d" }, '
        '{ kind = "all_of", rules = [ { band_abs = 0.1 }, { kind = "never" } ] } ]\n'
    )
    trigger = parse_config(text).strategy().trigger
    assert trigger == AnyOf(
        (
            Calendar(period=timedelta(days=30)),
            AllOf((Threshold(Decimal("0.1"), None), Never())),
        )
    )
    never = parse_config(TARGETS + '[trigger]\nkind = "never"\n').strategy().trigger
    assert isinstance(never, Never)


def test_policy_and_band_edge_with_a_nested_threshold() -> None:
    text = (
        TARGETS + '[trigger]\nkind = "any_of"\nrules = [ { kind = "calendar", every = "1w" }, '
        "{ band_abs = 0.04 } ]\n"
        '[rebalance]\nstyle = "band_edge"\nmin_trade = 25\nslippage = 0.002\nunmanaged = "sell"\n'
    )
    strategy = parse_config(text).strategy()
    assert strategy.policy.style == "band_edge"
    assert strategy.policy.min_trade == 25
    assert strategy.policy.slippage == Decimal("0.002")
    assert strategy.policy.unmanaged == "sell"
    assert strategy.threshold == Threshold(Decimal("0.04"), None)


# --- one error case each: path, value found, fix --------------------------------------------------


def test_weights_not_summing_to_one() -> None:
    p = only_problem("[targets]\nBTC = 0.5\nETH = 0.35\nUSDT = 0.1\n")
    assert_problem(p, "targets", "0.95", "add 0.05")
    assert "sum to 1" in p
    p = only_problem("[targets]\nBTC = 0.6\nETH = 0.5\n")
    assert_problem(p, "targets", "1.1", "take 0.1 away")


def test_negative_weight_and_weight_above_one() -> None:
    problems = problems_of("[targets]\nBTC = 40\nETH = -0.1\nUSDT = 0.2\n")
    assert len(problems) == 2
    assert_problem(problems[0], "targets.BTC", "40", "write 0.4 for 40 %")
    assert_problem(problems[1], "targets.ETH", "-0.1", "0.25")
    assert "[0, 1]" in problems[1]


def test_weights_written_as_percent_are_recognised() -> None:
    problems = problems_of("[targets]\nBTC = 60\nUSDT = 40\n")
    assert all("not percent" in p for p in problems)


def test_duplicate_assets_differing_by_case() -> None:
    p = only_problem("[targets]\nBTC = 0.5\nbtc = 0.3\nUSDT = 0.2\n")
    assert_problem(p, "targets", '"BTC" and "btc"', "keep one entry per asset")


def test_exact_duplicate_key_is_a_syntax_error_with_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[targets]\nBTC = 0.5\nUSDT = 0.5\nBTC = 0.1\n", "my.toml")
    msg = str(info.value)
    assert msg.startswith("my.toml: TOML syntax error at line 4")
    assert "targets.BTC is written twice (first on line 2)" in msg
    assert "Fix: write each key" in msg


def test_table_written_twice_names_both_lines() -> None:
    with pytest.raises(
        ConfigError, match=r"line 4.*\[targets\] is written twice \(first on line 1"
    ):
        parse_config("[targets]\nBTC = 1\n[fees]\n[targets]\nETH = 1\n")


def test_toml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(TARGETS + "[trigger]\nband_abs = 5%\n", "cfg.toml")
    msg = str(info.value)
    assert "cfg.toml: TOML syntax error at line 7, column 13: band_abs = 5%" in msg
    assert "no % sign" in msg


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("band_abs", "0", "write a positive band such as 0.05"),
        ("band_abs", "-0.02", "write a band such as 0.05"),
        ("band_abs", "5", "write 0.05 for 5 %"),
        ("band_rel", "1", "write 0.01 for 1 %"),
        ("band_rel", "1.5", "write 0.015 for 1.5 %"),
    ],
)
def test_band_must_lie_strictly_between_zero_and_one(key: str, value: str, fix: str) -> None:
    p = only_problem(TARGETS + f"[trigger]\n{key} = {value}\n")
    assert_problem(p, f"trigger.{key}", value, fix)
    assert "(0, 1)" in p


def test_unknown_exchange_suggests_a_near_id() -> None:
    p = only_problem('exchange = "binanse"\n' + TARGETS)
    assert_problem(p, "exchange", '"binanse"', 'did you mean "binance"?')
    assert "CCXT exchange id" in p


def test_frozen_exchange_lists_match_the_installed_ccxt() -> None:
    ccxt = pytest.importorskip("ccxt")
    from rebalancer.config.exchanges import EXCHANGE_IDS, PASSWORD_EXCHANGES

    regen = "regenerate src/rebalancer/config/exchanges.py (its docstring says how)"
    assert list(EXCHANGE_IDS) == list(ccxt.exchanges), regen
    needs_password = {
        i for i in ccxt.exchanges if getattr(ccxt, i)().requiredCredentials.get("password")
    }
    assert needs_password == PASSWORD_EXCHANGES, regen


def test_exchange_id_is_case_insensitive() -> None:
    assert parse_config('exchange = "Kraken"\n' + TARGETS).exchange == "kraken"


def test_bad_mode() -> None:
    p = only_problem('mode = "real"\n' + TARGETS)
    assert_problem(p, "mode", '"real"', 'mode = "live"')
    assert 'must be one of "paper", "live"' in p
    p = only_problem('mode = "lvie"\n' + TARGETS)
    assert 'did you mean "live"?' in p


def test_band_edge_without_a_threshold() -> None:
    p = only_problem(
        TARGETS + '[trigger]\nkind = "calendar"\nevery = "1d"\n[rebalance]\nstyle = "band_edge"\n'
    )
    assert_problem(p, "rebalance.style", 'trigger kind "calendar"', '"hybrid"')
    assert 'style = "target"' in p


def test_calendar_needs_exactly_one_of_every_and_cron() -> None:
    both = only_problem(
        TARGETS + '[trigger]\nkind = "calendar"\nevery = "1d"\ncron = "0 0 * * *"\n'
    )
    assert_problem(both, "trigger", 'every = "1d" and cron = "0 0 * * *"', "remove the other")
    neither = only_problem(TARGETS + '[trigger]\nkind = "hybrid"\nband_abs = 0.05\n')
    assert_problem(neither, "trigger", "neither", 'add every = "1d"')


def test_invalid_cron() -> None:
    p = only_problem(TARGETS + '[trigger]\nkind = "calendar"\ncron = "0 25 * * *"\n')
    assert_problem(p, "trigger.cron", '"0 25 * * *"', "0-23")
    p = only_problem(TARGETS + '[trigger]\nkind = "calendar"\ncron = "0 0 * *"\n')
    assert_problem(p, "trigger.cron", '"0 0 * *"', "write 5")


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("1 day", 'write "1d"'),
        ("4 hours", 'write "4h"'),
        ("1M", "cron"),
        ("0d", "a count and a unit"),
        ("daily", "a count and a unit"),
    ],
)
def test_invalid_period(text: str, fix: str) -> None:
    p = only_problem(TARGETS + f'[trigger]\nkind = "calendar"\nevery = "{text}"\n')
    assert_problem(p, "trigger.every", f'"{text}"', fix)


def test_problem_inside_a_nested_rule_names_its_index() -> None:
    p = only_problem(
        TARGETS + '[trigger]\nkind = "all_of"\nrules = [ { kind = "never" }, '
        '{ kind = "calendar", every = "2x" } ]\n'
    )
    assert_problem(p, "trigger.rules[1].every", '"2x"', "a count and a unit")


def test_unknown_kind_suggests_a_near_one() -> None:
    p = only_problem(TARGETS + '[trigger]\nkind = "hybird"\n')
    assert_problem(p, "trigger.kind", '"hybird"', 'did you mean "hybrid"?')


def test_unknown_key_lists_allowed_keys_and_a_near_match() -> None:
    p = only_problem('exchnage = "binance"\n' + TARGETS)
    assert p.startswith("exchnage: unknown key")
    assert 'did you mean "exchange"?' in p
    assert "mode, exchange, quote" in p
    p = only_problem(TARGETS + "[rebalance]\nmin_trad = 5\n")
    assert p.startswith("rebalance.min_trad: unknown key")
    assert 'did you mean "min_trade"?' in p


def test_unknown_key_in_a_trigger_kind_says_which_kind_has_it() -> None:
    p = only_problem(TARGETS + '[trigger]\nkind = "threshold"\nevery = "1d"\n')
    assert p.startswith("trigger.every: unknown key")
    assert "band_abs, band_rel, kind" in p
    assert '"every" belongs to kind "calendar" or "hybrid"' in p


def test_api_keys_in_the_toml_are_refused_without_echoing_them() -> None:
    text = (
        'exchange = "kraken"\napi_key = "AKIA-visible"\n'
        + TARGETS
        + '[exchange_auth]\napiSecret = "s3cr3t-value"\n'
    )
    problems = problems_of(text)
    joined = "\n".join(problems)
    assert "AKIA-visible" not in joined and "s3cr3t-value" not in joined
    [top] = [p for p in problems if p.startswith("api_key:")]
    assert_problem(top, "api_key", "a value (not shown)", ".env")
    assert "KRAKEN_API_KEY" in top and "KRAKEN_API_SECRET" in top
    assert any(p.startswith("exchange_auth.apiSecret: API keys") for p in problems)
    # the secret key is not reported a second time as a mere unknown key
    assert not any(p.startswith("api_key: unknown key") for p in problems)


@pytest.mark.parametrize("key", ["password", "secret", "api-key", "token", "passphrase"])
def test_any_secret_like_key_is_refused(key: str) -> None:
    p = only_problem(TARGETS + f'[rebalance]\n"{key}" = "x"\n')
    assert "secrets do not belong in the config file" in p


def test_missing_targets_in_a_file() -> None:
    p = only_problem('mode = "paper"\n')
    assert p.startswith("targets: this key is required")
    assert "add a [targets] table" in p


def test_targets_need_an_asset_besides_the_quote() -> None:
    p = only_problem("[targets]\nUSDT = 1\n")
    assert_problem(p, "targets", "a table {USDT}", "add assets")


def test_asset_codes_are_checked() -> None:
    problems = problems_of('[targets]\n"BTC/USDT" = 0.5\n"B T C" = 0.5\n')
    assert_problem(problems[0], 'targets."BTC/USDT"', '"BTC/USDT"', 'write "BTC" alone')
    assert_problem(problems[1], 'targets."B T C"', '"B T C"', "a code such as BTC")


def test_find_config_prefers_the_current_folder(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None
    (tmp_path / "rebalancer.toml").write_text(TARGETS)
    assert find_config(tmp_path) == tmp_path / "rebalancer.toml"


def test_wrong_types() -> None:
    problems = problems_of(TARGETS + '[trigger]\nband_abs = "five"\n[rebalance]\nslippage = true\n')
    assert_problem(problems[0], "trigger.band_abs", '"five"', "plain number")
    assert_problem(problems[1], "rebalance.slippage", "true", "plain number")
    p = only_problem(TARGETS + 'sandbox = "yes"\n'.replace("sandbox", "[fees]\ntaker"))
    assert_problem(p, "fees.taker", '"yes"', "plain number")


def test_markets_overrides_are_checked() -> None:
    problems = problems_of(TARGETS + "[markets.BTC]\namount_step = 0\nmin_notional = -5\n")
    assert_problem(problems[0], "markets.BTC.amount_step", "0", "positive")
    assert_problem(problems[1], "markets.BTC.min_notional", "-5", "0 or a positive")
    p = only_problem(TARGETS + "[markets.USDT]\nmin_notional = 5\n")
    assert_problem(p, "markets.USDT", "a table", "remove [markets.USDT]")


def test_paper_data_dir_must_exist_and_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "candles").mkdir()
    cfg = tmp_path / "conf" / "rebalancer.toml"
    cfg.write_text(TARGETS + '[paper]\ndata_dir = "candles"\n')
    assert load_config(cfg).paper.data_dir == tmp_path / "conf" / "candles"
    cfg.write_text(TARGETS + '[paper]\ndata_dir = "nowhere"\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    [p] = info.value.problems
    nowhere = tmp_path / "conf" / "nowhere"
    assert_problem(p, "paper.data_dir", f'"{nowhere}"', "embedded demo data")


def test_state_dir_resolution(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('state_dir = "state"\n' + TARGETS)
    assert load_config(cfg).state_dir == tmp_path / "state"
    assert parse_config(TARGETS).state_dir == default_data_dir()
    assert str(tmp_path) in str(default_data_dir())  # conftest points XDG_DATA_HOME into tmp


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    msg = str(info.value)
    assert str(tmp_path / "nope.toml") in msg and "not found" in msg
    assert "config.example.toml" in msg


def test_several_problems_are_reported_together() -> None:
    text = (
        'mode = "real"\nexchange = "binanse"\ncolour = "blue"\n'
        "[targets]\nBTC = 0.5\nETH = 0.3\n"
        '[trigger]\nkind = "hybrid"\nevery = "1 day"\nband_abs = 1.5\n'
        "[fees]\ntaker = -0.001\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.toml")
    paths = [p.split(":")[0] for p in info.value.problems]
    assert paths == [  # in the order of the file
        "mode",
        "exchange",
        "colour",
        "targets",
        "trigger.band_abs",
        "trigger.every",
        "fees.taker",
    ]
    msg = str(info.value)
    assert msg.startswith("bad.toml: 7 problems in the configuration:")
    assert all(f"  - {p}" in msg for p in info.value.problems)


def test_config_error_stays_backwards_compatible() -> None:
    err = ConfigError("plain message")
    assert err.problems == ["plain message"]
    assert str(err) == "plain message"
    assert pickle.loads(pickle.dumps(err)).problems == ["plain message"]


# --- overrides ------------------------------------------------------------------------------


def test_overrides_set_dotted_keys_replace_tables_and_remove_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(TARGETS + '[trigger]\nkind = "hybrid"\ncron = "0 0 * * *"\nband_abs = 0.05\n')
    s = load_config(cfg, {"mode": "live", "trigger.band_abs": 0.1, "rebalance.min_trade": "25"})
    assert s.mode == "live"
    assert s.trigger.band_abs == Decimal("0.1")  # type: ignore[union-attr]
    assert str(s.trigger.band_abs) == "0.1"  # type: ignore[union-attr]
    assert s.rebalance.min_trade == 25
    s = load_config(cfg, {"targets": {"BTC": 0.5, "USDT": 0.5}})
    assert s.targets == {"BTC": Decimal("0.5"), "USDT": Decimal("0.5")}
    s = load_config(cfg, {"trigger.cron": None, "trigger.every": "4h"})
    assert s.strategy().trigger == AllOf(
        (Calendar(period=timedelta(hours=4), since="check"), Threshold(Decimal("0.05")))
    )


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"trigger.band_abs": 2})
    assert "with overrides of trigger.band_abs" in str(info.value)
    assert_problem(info.value.problems[0], "trigger.band_abs", "2", "write 0.02")
    with pytest.raises(ConfigError, match="mode is not a table"):
        load_config(None, {"mode.x": 1})


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_from_an_env_mapping_do_not_touch_os_environ() -> None:
    before = dict(os.environ)
    keys = load_secrets("binance", env={"BINANCE_API_KEY": "k-123", "BINANCE_API_SECRET": "s-456"})
    assert keys.require_keys() is keys
    assert keys.ccxt_credentials() == {"apiKey": "k-123", "secret": "s-456"}
    assert keys.status() == {
        "BINANCE_API_KEY": "set",
        "BINANCE_API_SECRET": "set",
        "BINANCE_API_PASSWORD": "not needed",
    }
    assert dict(os.environ) == before


def test_secrets_from_a_dotenv_file_and_env_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / "my.env"
    dotenv.write_text("KRAKEN_API_KEY=file-key\nKRAKEN_API_SECRET='file secret'\n")
    dotenv.chmod(0o600)
    keys = load_secrets("kraken", env={}, dotenv_path=dotenv)
    assert keys.ccxt_credentials() == {"apiKey": "file-key", "secret": "file secret"}
    keys = load_secrets("kraken", env={"KRAKEN_API_KEY": "env-key"}, dotenv_path=dotenv)
    assert keys.ccxt_credentials()["apiKey"] == "env-key"
    assert "KRAKEN_API_KEY" not in os.environ


def test_the_dotenv_next_to_the_config_is_used_not_the_working_directorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir, cwd = tmp_path / "conf", tmp_path / "elsewhere"
    config_dir.mkdir()
    cwd.mkdir()
    (config_dir / "rebalancer.toml").write_text(TARGETS)
    (config_dir / ".env").write_text("BINANCE_API_KEY=mine\nBINANCE_API_SECRET=mine-too\n")
    (config_dir / ".env").chmod(0o600)
    (cwd / ".env").write_text("BINANCE_API_KEY=planted\nBINANCE_API_SECRET=planted\n")
    (cwd / ".env").chmod(0o600)
    monkeypatch.chdir(cwd)
    settings = load_config(Path("../conf/rebalancer.toml"))
    assert settings.dotenv_path == (config_dir / ".env").resolve()
    keys = load_secrets("binance", env={}, dotenv_path=settings.dotenv_path)
    assert keys.ccxt_credentials() == {"apiKey": "mine", "secret": "mine-too"}
    # without a config file: the user config folder's .env, still not the working directory's
    assert default_config().dotenv_path != cwd / ".env"
    assert load_secrets("binance", env={}).ccxt_credentials().get("apiKey") != "planted"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_dotenv_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("BINANCE_API_KEY=k-secret-1\nBINANCE_API_SECRET=s-secret-2\n")
    dotenv.chmod(0o600)
    os.chown(dotenv, 4242, 4242)
    with pytest.raises(DotenvExposed) as info:
        load_secrets("binance", env={}, dotenv_path=dotenv)
    msg = str(info.value)
    assert "owned by another user (uid 4242" in msg and "secret-1" not in msg


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700])
def test_a_dotenv_other_users_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("BINANCE_API_KEY=k-secret-1\nBINANCE_API_SECRET=s-secret-2\n")
    dotenv.chmod(mode)
    if mode & 0o077 == 0:
        assert load_secrets("binance", env={}, dotenv_path=dotenv).missing == []
        return
    with pytest.raises(DotenvExposed) as info:
        load_secrets("binance", env={}, dotenv_path=dotenv)
    msg = str(info.value)
    assert str(dotenv) in msg and f"chmod 600 {dotenv}" in msg and f"{mode:o}" in msg
    assert "secret-1" not in msg and "secret-2" not in msg


def test_missing_keys_raise_auth_error_naming_variables_not_values(tmp_path: Path) -> None:
    keys = load_secrets("binance", env={"BINANCE_API_KEY": "only-key"}, dotenv_path=tmp_path / "x")
    with pytest.raises(AuthError) as info:
        keys.require_keys()
    msg = str(info.value)
    assert "BINANCE_API_SECRET" in msg and "only-key" not in msg
    assert "BINANCE_API_KEY " not in msg.split("but", 1)[1].split("not set")[0]
    assert "never in the TOML" in msg and "no such file" in msg


def test_empty_values_count_as_missing_and_password_exchanges_need_it() -> None:
    keys = load_secrets("okx", env={"OKX_API_KEY": "k", "OKX_API_SECRET": "  "})
    assert keys.missing == ["OKX_API_SECRET", "OKX_API_PASSWORD"]
    with pytest.raises(AuthError, match="OKX_API_SECRET and OKX_API_PASSWORD are not set"):
        keys.require_keys()


def test_keys_never_show_their_values() -> None:
    keys = load_secrets("binance", env={"BINANCE_API_KEY": "KEY-VALUE", "BINANCE_API_SECRET": "S"})
    for text in (repr(keys), str(keys), f"{keys}", repr(keys.secret)):
        assert "KEY-VALUE" not in text and "'S'" not in text
    assert repr(keys) == (
        "ExchangeKeys(exchange='binance', api_key=set, secret=set, password=missing)"
    )
    assert isinstance(keys, ExchangeKeys)


# --- showing the effective config ----------------------------------------------------------------


def test_show_config_prints_effective_values_and_key_status_only() -> None:
    env = {"BINANCE_API_KEY": "KEY-VALUE-123"}
    text = show_config(default_config(), env=env)
    assert "KEY-VALUE-123" not in text
    assert 'BINANCE_API_KEY = "set"' in text
    assert 'BINANCE_API_SECRET = "missing"' in text
    assert 'mode = "paper"' in text
    assert "BTC = 0.40" in text
    assert 'kind = "threshold"\nband_abs = 0.05' in text
    assert "initial_balances = { USDT = 10000 }" in text
    assert "# data_dir = (not set: the embedded demo data)" in text
    assert f'state_dir = "{default_data_dir()}"' in text


def test_redacted_scrubs_secret_values_and_secret_named_keys() -> None:
    keys = load_secrets("binance", env={"BINANCE_API_KEY": "k"})
    data = default_config().redacted(keys)
    assert data["env"]["BINANCE_API_KEY"] == "set"
    assert data["targets"]["BTC"] == Decimal("0.40")
    assert isinstance(data["state_dir"], str)
    from rebalancer.config.show import _scrub

    scrubbed = _scrub({"notify": {"webhook_token": "abc", "url": "x"}, "targets": {"TOKEN": 1}})
    assert scrubbed == {"notify": {"webhook_token": REDACTED, "url": "x"}, "targets": {"TOKEN": 1}}


def test_settings_are_immutable() -> None:
    s: Settings = default_config()
    with pytest.raises(ValueError, match="frozen"):
        s.mode = "live"  # type: ignore[misc]


def test_the_docs_example_configs_load_as_documented() -> None:
    """docs/examples/*.toml, used by the README's and docs' commands, are valid configs."""
    examples = sorted((EXAMPLE.parent / "docs" / "examples").glob("*.toml"))
    assert examples
    six = load_config(EXAMPLE.parent / "docs" / "examples" / "six-assets.toml")
    assert dict(six.targets) == {
        "BTC": Decimal("0.3"),
        "ETH": Decimal("0.25"),
        "BNB": Decimal("0.15"),
        "XRP": Decimal("0.1"),
        "ADA": Decimal("0.1"),
        "USDT": Decimal("0.1"),
    }
    assert (six.fees.taker, six.rebalance.slippage) == (Decimal("0.001"), Decimal("0.0005"))
    for path in examples:
        load_config(path)


# --- values that may be secrets are never echoed ----------------------------------------------


@pytest.mark.parametrize(
    "value", ["sk_live_51HxQz", "sk_live_51HxQzAbCdEfGhIjKlMnOp", "hunter2-hunter2-hunter2"]
)
def test_a_secret_pasted_under_targets_is_not_echoed(value: str) -> None:
    text = f'[targets]\nBTC = "{value}"\nUSDT = 0.5\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    msg = str(info.value)
    assert "targets.BTC: must be a number" in msg and "not repeated here" in msg
    assert value not in msg and value[:10] not in msg


def test_a_short_ordinary_value_is_still_shown() -> None:
    with pytest.raises(ConfigError, match='found "fast"'):
        parse_config(TARGETS + '[trigger]\nkind = "threshold"\nband_abs = "fast"\n')


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://bot:s3cret-pw@db.example/rebalancer",
        "postgresql+psycopg://bot@db.example/rebalancer?password=s3cret-pw",
        "postgresql+psycopg://bot@db.example/rebalancer?sslmode=require&sslpassword=s3cret-pw",
    ],
)
def test_a_password_anywhere_in_journal_url_is_refused_and_never_shown(url: str) -> None:
    with pytest.raises(ConfigError, match="must not contain a password") as info:
        parse_config(f'journal_url = "{url}"\n' + TARGETS)
    assert "s3cret-pw" not in str(info.value)


def test_mask_url_hides_user_info_and_secret_query_values_only() -> None:
    text = (
        "cannot open postgresql+psycopg://bot:pw1@db:5432/rb?sslmode=require&password=pw2 "
        "and https://api.binance.com/api/v3/account?timestamp=1&signature=abc123"
    )
    masked = mask_url(text)
    assert "pw1" not in masked and "pw2" not in masked and "abc123" not in masked
    assert "postgresql+psycopg://bot:***@db:5432/rb?sslmode=require&password=***" in masked
    assert "timestamp=1&signature=***" in masked
    assert (
        mask_url("sqlite:////var/lib/rb/journal.sqlite") == "sqlite:////var/lib/rb/journal.sqlite"
    )
    assert url_secrets("postgresql://u@h/d?sslmode=require") == []
    assert url_secrets("postgresql://u:p@h/d?token=t") == ["password", "token"]


def test_config_show_masks_a_password_in_any_url(tmp_path: Path) -> None:
    settings = parse_config('journal_url = "postgresql+psycopg://bot@db/rb"\n' + TARGETS)
    # a URL that slipped past the check (e.g. a future field) is still masked when shown
    object.__setattr__(settings, "journal_url", "postgresql+psycopg://bot:pw9@db/rb?password=pw8")
    text = show_config(settings, env={}, dotenv_path=tmp_path / "none")
    assert "pw9" not in text and "pw8" not in text and "bot:***@db/rb?password=***" in text


def test_the_kind_list_and_the_hints_name_every_trigger_kind_and_key() -> None:
    from rebalancer.config.problems import _RULE_FIELDS, RULE_KINDS
    from rebalancer.config.rules import RULE_MODELS

    assert set(RULE_KINDS) == set(RULE_MODELS)
    for kind, model in RULE_MODELS.items():
        assert set(_RULE_FIELDS[kind]) == set(model.model_fields) - {"kind"}, kind
    problem = only_problem(TARGETS + '[trigger]\nkind = "vol"\n')
    assert '"vol_threshold"' in problem
