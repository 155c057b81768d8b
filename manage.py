"""Operator commands: `python manage.py serve | migrate | seed-demo | demo-login ROLE | simulate ... |
outbox ... | export-corrections FILE | create-staff NAME | push-menu`.

`serve` is what `scripts/run` starts. With no DATABASE_URL/REDIS_URL it runs the embedded default:
an SQLite file, an in-process queue and worker, the fake WeChat API on loopback, and a demo county.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

# The embedded demo's credentials (scripts/run and `simulate` agree on them); never used when a
# deployment sets DATABASE_URL or REDIS_URL.
DEMO_ENV = {
    "SECRET_KEY": "demo-secret-key-change-me",
    "WECHAT_TOKEN": "demo-token",
    "WECHAT_APP_ID": "wx_demo_app",
    "WECHAT_APP_SECRET": "demo-app-secret",
    "WECHAT_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "MINIPROGRAM_APP_ID": "wx_demo_mini",
    "MINIPROGRAM_APP_SECRET": "demo-mini-secret",
}


def _demo_defaults() -> None:
    """In the embedded default, fill unset WeChat settings with the demo's."""
    if not os.environ.get("DATABASE_URL") and not os.environ.get("REDIS_URL"):
        for name, value in DEMO_ENV.items():
            os.environ.setdefault(name, value)


def _settings():
    """The settings, with the demo's credentials in the embedded default (every command agrees)."""
    from config.settings import SettingsError, load_settings

    _demo_defaults()
    try:
        return load_settings()
    except SettingsError as error:
        sys.exit(f"configuration error: {error}")


def cmd_migrate(_args) -> int:
    from liaison import schema

    schema.upgrade(_settings().database_url)
    print("database is at the latest schema")
    return 0


def _county_scope(code: str | None):
    """The scope of `--county CODE` (the default county when not given); exits on an unknown code."""
    from liaison.core import db, tenant
    from liaison.tenancy import service as tenancy

    if code is None:
        return tenant.DEFAULT
    with tenant.use(tenant.all_counties("find the county named on the command line")), \
            db.session_scope() as session:
        county = tenancy.by_code(session, code)
        if county is None:
            sys.exit(f"no county with code {code!r} (python manage.py county list)")
        return tenant.county(county.id)


def cmd_seed_demo(args) -> int:
    from liaison import demo, schema
    from liaison.core import db, tenant

    settings = _settings()
    schema.upgrade(settings.database_url)
    db.init_engine(settings.database_url)
    with tenant.use(_county_scope(args.county)), db.session_scope() as session:
        seeded = demo.seed_demo(session)
    print("demo county seeded" if seeded else "database already has stations; nothing seeded")
    _seed_demo_history()
    return 0


def _seed_demo_history() -> None:
    """A few hundred cases over several months and the console's demo accounts (once)."""
    from liaison import demo_history, demo_suggestions
    from liaison.core import db

    print("seeding the demo's case history (once; about a minute)")
    with db.session_scope() as session:
        made = demo_history.seed_history(session)
    with db.session_scope() as session:
        demo_suggestions.seed(session)  # a year of 代表建议 and 民生实事 on top of the cases
    if made:
        print(f"{made} demo cases; console sign-in: http://127.0.0.1:5000/console/ as "
              f"county / station1 / station2 / deputy1, password {demo_history.DEMO_PASSWORD}")


def cmd_serve(args) -> int:
    from liaison import demo, schema
    from liaison.core import db
    from webapp import create_app

    _demo_defaults()
    settings = _settings()
    schema.upgrade(settings.database_url)
    fake = None
    if settings.embedded and not os.environ.get("WECHAT_API_BASE_URL"):
        from wechat_fake.server import FakeWeChatServer

        fake = FakeWeChatServer(appid=settings.wechat_app_id, secret=settings.wechat_app_secret,
                                mp_appid=settings.miniprogram_app_id or "wx_demo_mini",
                                mp_secret=settings.miniprogram_app_secret or "demo-mini-secret",
                                port=args.fake_port)
        fake.start()
        settings = dataclasses.replace(settings, wechat_api_base_url=fake.base_url)
    db.init_engine(settings.database_url)
    if settings.embedded:
        with db.session_scope() as session:
            demo.seed_demo(session)
        _seed_demo_history()
    app = create_app(settings)
    mode = "embedded (SQLite + in-process queue)" if settings.embedded else "production"
    print(f"一键找代表 back end, {mode}: webhook http://{args.host}:{args.port}/wechat")
    print(f"office console: http://{args.host}:{args.port}/console/")
    if fake is not None:
        print(f"fake WeChat API: {fake.base_url}  (calls: {fake.base_url}/__fake__/calls)")
        print("talk to it: python manage.py simulate text 幸福里小区路灯坏了")
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False,
            request_handler=_private_request_log_handler())
    return 0


def _private_request_log_handler():
    """The dev server's access log without query strings: WeChat puts the openid there."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):
            path = self.path.split("?", 1)[0]
            self.log("info", '"%s %s" %s %s', self.command, path, code, size)

    return Handler


def cmd_simulate(args) -> int:
    from wechat_fake.__main__ import main as fake_main

    _demo_defaults()
    url = args.url or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}/wechat"
    return fake_main(["simulate", "--url", url, "--openid", args.openid, *args.rest]) or 0


def cmd_outbox(args) -> int:
    from sqlalchemy import select

    from liaison.core import db, tenant
    from liaison.messaging import lifecycle as outbox_lifecycle
    from liaison.messaging import outbox
    from liaison.messaging.models import OutboxMessage

    db.init_engine(_settings().database_url)
    # Operators see and retry every county's undelivered messages.
    with tenant.use(tenant.all_counties("operator: outbox")), db.session_scope() as session:
        if args.action == "failed":
            rows = session.scalars(select(OutboxMessage).where(
                OutboxMessage.status.in_(outbox_lifecycle.OPERATOR_ATTENTION))
                .order_by(OutboxMessage.id)).all()
            for row in rows:
                print(f"{row.id}\t{row.status}\t{row.kind}\tattempts={row.attempts}\t{row.last_error or ''}")
            print(f"{len(rows)} message(s) not delivered")
        elif args.action == "retry":
            for outbox_id in args.ids:
                ok = outbox.requeue(session, outbox_id)
                print(f"{outbox_id}: {'requeued' if ok else 'not retryable (sent, pending or unknown id)'}")
    return 0


def cmd_push_menu(args) -> int:
    """Create the official account's menu from liaison/data/menu.json (or --file) through menu/create."""
    import json

    from liaison import runtime
    from liaison.conversation import menu

    settings = _settings()
    if args.dry_run:
        print(json.dumps(menu.body(menu.load(args.file), settings.miniprogram_app_id), ensure_ascii=False,
                         indent=2))
        return 0
    sent = menu.push(runtime.configure(settings).wechat, settings.miniprogram_app_id, args.file)
    names = [b["name"] for b in sent["button"]]
    print("menu created: " + " / ".join(names))
    return 0


def cmd_export_corrections(args) -> int:
    """Write staff's category corrections as the CSV `python -m classifiers.train --corrections` reads."""
    import csv

    from sqlalchemy import select

    from liaison.case.models import ClassifierCorrection
    from liaison.core import db

    db.init_engine(_settings().database_url)
    with db.session_scope() as session, open(args.file, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "category"])
        rows = session.scalars(select(ClassifierCorrection).order_by(ClassifierCorrection.id)).all()
        for row in rows:
            writer.writerow([row.text, row.new_category])
    print(f"{len(rows)} correction(s) written to {args.file}; retrain with "
          f"python -m classifiers.train --corrections {args.file}")
    return 0


def cmd_create_staff(args) -> int:
    """Create the first county-level staff account; print its one-time binding code (mini-program)
    and its one-time link to set a console password."""
    from liaison import schema
    from liaison.console import auth as console_auth
    from liaison.core import db, tenant
    from liaison.people import service as accounts

    settings = _settings()
    schema.upgrade(settings.database_url)
    db.init_engine(settings.database_url)
    try:
        if args.city:
            return _create_city_staff(args)
        with tenant.use(_county_scope(args.county)), db.session_scope() as session:
            account, code = accounts.create_first_staff(session, args.name)
            credential, token = console_auth.issue_password_link(session, account, login=args.login)
    except (accounts.AccountError, console_auth.ConsoleAuthError) as error:
        print(f"refused: {getattr(error, 'message', error)}", file=sys.stderr)
        return 1
    print(f"staff account {account.name}: binding code {code} (enter it once in the mini-program)")
    base = args.base_url.rstrip("/")
    print(f"console sign-in name {credential.login}; set the password once at "
          f"{base}/console/password/{token} (valid {console_auth.LINK_LIFETIME.days} days)")
    return 0


def _create_city_staff(args) -> int:
    """A city staff account (figures of every county of the city), kept in the city's first county
    unless --county names another of its counties."""
    from liaison.core import db, tenant
    from liaison.people import service as accounts
    from liaison.tenancy import service as tenancy

    with tenant.use(tenant.all_counties("find the city named on the command line")), \
            db.session_scope() as session:
        city = tenancy.city_by_code(session, args.city)
        if city is None:
            sys.exit(f"no city with code {args.city!r} (python manage.py city list)")
        counties = tenancy.city_counties(session, city.id)
        if not counties:
            sys.exit(f"city {args.city!r} has no counties yet (python manage.py city add ... --counties)")
        city_id, home = city.id, counties[0].id
    scope = _county_scope(args.county) if args.county else tenant.county(home)
    with tenant.use(scope), db.session_scope() as session:
        account, code = accounts.create_city_staff(session, args.name, city_id)
    print(f"city staff account {account.name}: binding code {code} (enter it once in the mini-program)")
    return 0


def cmd_city(args) -> int:
    """`city add CODE NAME --counties A,B`: a city grouping counties; `city list`."""
    from liaison import schema
    from liaison.core import db, tenant
    from liaison.core.errors import DomainError
    from liaison.tenancy import service as tenancy

    settings = _settings()
    schema.upgrade(settings.database_url)
    db.init_engine(settings.database_url)
    with tenant.use(tenant.all_counties("operator: cities")), db.session_scope() as session:
        if args.action == "list":
            from sqlalchemy import select

            from liaison.tenancy.models import City

            for city in session.scalars(select(City).order_by(City.id)):
                codes = ",".join(c.code for c in tenancy.city_counties(session, city.id))
                print(f"{city.id}\t{city.code}\t{city.name}\t{codes}")
            return 0
        if not args.code or not args.name:
            sys.exit("usage: manage.py city add CODE NAME --counties A,B")
        codes = [c.strip() for c in (args.counties or "").split(",") if c.strip()]
        try:
            city = tenancy.add_city(session, args.code, args.name, codes)
        except DomainError as error:
            print(f"refused: {error.message}", file=sys.stderr)
            return 1
        print(f"city {city.code} ({city.name}) added with counties {', '.join(codes) or '(none)'}; "
              f"staff: python manage.py create-staff NAME --city {city.code}")
    return 0


def cmd_county(args) -> int:
    """`county add CODE NAME [--wechat-*]`: a new county, at once (no restart); `county list`."""
    from liaison import schema
    from liaison.core import db, tenant
    from liaison.core.errors import DomainError
    from liaison.tenancy import service as tenancy

    settings = _settings()
    schema.upgrade(settings.database_url)
    db.init_engine(settings.database_url)
    with tenant.use(tenant.all_counties("operator: counties")), db.session_scope() as session:
        if args.action == "list":
            for county in tenancy.all_counties(session):
                account = county.wechat_app_id or "(the deployment's official account)"
                print(f"{county.id}\t{county.code}\t{county.name}\t{account}")
            return 0
        if not args.code or not args.name:
            sys.exit("usage: manage.py county add CODE NAME")
        try:
            county = tenancy.add_county(session, args.code, args.name, wechat_app_id=args.wechat_app_id,
                                        wechat_app_secret=args.wechat_app_secret,
                                        wechat_token=args.wechat_token,
                                        wechat_encoding_aes_key=args.wechat_encoding_aes_key)
        except DomainError as error:
            print(f"refused: {error.message}", file=sys.stderr)
            return 1
        print(f"county {county.code} ({county.name}) added with id {county.id}; "
              f"first staff: python manage.py create-staff NAME --county {county.code}")
    return 0


def cmd_open311(args) -> int:
    """Partner keys (`key issue NAME`, `key revoke ID`, `key list`), hand-off targets (`target set
    NAME ENDPOINT API_KEY [--category C]`), and a manual hand-off (`handoff CASE_NUMBER`)."""
    from liaison.core import db, tenant
    from liaison.core.errors import DomainError
    from liaison.core.types import Actor
    from liaison.interop import service as interop

    settings = _settings()
    db.init_engine(settings.database_url)
    scope = _county_scope(args.county)
    with tenant.use(scope), db.session_scope() as session:
        try:
            if args.what == "key" and args.action == "issue":
                partner, key = interop.issue_key(session, " ".join(args.rest))
                print(f"partner {partner.public_id} ({partner.name}); api_key (shown once, stored hashed):")
                print(key)
            elif args.what == "key" and args.action == "revoke":
                partner = interop.revoke_key(session, args.rest[0])
                print(f"partner {partner.public_id} ({partner.name}) revoked at {partner.revoked_at:%Y-%m-%d %H:%M}Z")
            elif args.what == "key" and args.action == "list":
                for partner in interop.partners(session):
                    state = "revoked" if partner.revoked_at else "active"
                    print(f"{partner.public_id}\t{partner.key_prefix}…\t{state}\t{partner.name}")
            elif args.what == "target" and args.action == "set":
                name, endpoint, key = args.rest[:3]
                target = interop.set_target(session, name, endpoint, key, category=args.category,
                                            service_code=args.service_code,
                                            jurisdiction_id=args.jurisdiction_id)
                print(f"cases of {target.category or 'every category'} go to {target.name} at {target.endpoint}")
                print(f"status callback secret (give it to {target.name}): {target.callback_secret}")
            elif args.what == "handoff":
                from liaison.case import service as cases  # only this sub-command needs it

                link = interop.hand_off(session, cases.case_by_number(session, args.action), Actor("staff"))
                print(f"case {args.action} will be filed at {link.target.name} by the next hand-off sweep")
            else:
                sys.exit("usage: manage.py open311 key issue NAME | key revoke ID | key list | "
                         "target set NAME ENDPOINT API_KEY | handoff CASE_NUMBER")
        except (DomainError, ValueError, IndexError) as error:
            print(f"refused: {getattr(error, 'message', None) or error}", file=sys.stderr)
            return 1
    return 0


def cmd_app_role(args) -> int:
    """Create (or fix) the PostgreSQL role the app connects as; run with the owner's DATABASE_URL."""
    from sqlalchemy import create_engine

    from liaison.tenancy import roles

    url = _settings().database_url
    if not url.startswith("postgresql"):
        sys.exit("app-role is for PostgreSQL (SQLite has one county and no roles)")
    engine = create_engine(url)
    with engine.begin() as connection:
        roles.grant_app_role(connection, args.role, os.environ.get("LIAISON_APP_ROLE_PASSWORD"))
    engine.dispose()
    print(f"role {args.role} may use the database and is bound by row-level security; "
          f"connect the web, worker and scheduler processes as {args.role}")
    return 0
DEMO_ROLES = ("resident", "deputy", "department", "staff")


def cmd_demo_login(args) -> int:
    """Print a ready mini-program session token for ROLE in the embedded demo (for curl or the API docs).

    The accounts are demo ones (the first deputy and department of the demo county, a county staff
    account, a demo resident), created on first use. Refused outside the embedded mode: a token
    printed on a console must never open a real county's data.
    """
    from sqlalchemy import select

    from liaison import demo, schema
    from liaison.core import db
    from liaison.people import service as accounts
    from liaison.people.models import Account, Department, Deputy, Resident

    settings = _settings()
    if not settings.embedded:
        print("refused: demo-login works only in the embedded demo (no REDIS_URL)", file=sys.stderr)
        return 1
    schema.upgrade(settings.database_url)
    db.init_engine(settings.database_url)
    with db.session_scope() as session:
        demo.seed_demo(session)
        if args.role == "resident":
            resident = session.scalar(select(Resident).where(Resident.mp_openid == DEMO_RESIDENT_OPENID))
            if resident is None:
                resident = accounts.login(session, DEMO_RESIDENT_OPENID).resident
            principal = accounts.Principal("resident", resident=resident)
        else:
            if args.role == "deputy":
                target = session.scalars(select(Deputy).order_by(Deputy.code)).first()
                found = select(Account).where(Account.role == "deputy", Account.deputy_id == target.id)
                make = {"deputy": target}
            elif args.role == "department":
                target = session.scalars(select(Department).order_by(Department.code)).first()
                found = select(Account).where(Account.role == "department", Account.department_id == target.id)
                make = {"department": target}
            else:
                target = None
                found = select(Account).where(Account.role == "staff", Account.station_id.is_(None))
                make = {}
            account = session.scalars(found.where(Account.active.is_(True)).order_by(Account.id)).first()
            if account is None:
                name = {"deputy": getattr(target, "name", ""), "department": f"{getattr(target, 'name', '')}经办人",
                        "staff": "演示 县人大工委"}[args.role]
                account, _code = accounts.create_account(session, args.role, name, **make)
            principal = accounts.Principal(account.role, account=account)
        token = accounts.issue_token(settings.secret_key, principal)
        label = principal.name if principal.account is not None else "演示群众"
    print(token)
    port = os.environ.get("PORT", "5000")
    print(f"{args.role} ({label}); try: curl -H 'Authorization: Bearer <token>' http://127.0.0.1:{port}/api/me",
          file=sys.stderr)
    return 0


DEMO_RESIDENT_OPENID = "o_demo_mp_resident"


def _unreachable(error: BaseException) -> str | None:
    """One line for a database or Redis that cannot be reached (instead of a long traceback)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # pragma: no cover
        RedisConnectionError = ()  # noqa: N806
    if isinstance(error, OperationalError) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        detail = str(getattr(error, "orig", error)).strip().splitlines()
        return f"database unreachable: {detail[0] if detail else type(error).__name__}"
    if RedisConnectionError and isinstance(error, RedisConnectionError):
        return f"Redis unreachable: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manage.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web service (embedded default without DATABASE_URL/REDIS_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    serve.add_argument("--fake-port", type=int, default=int(os.environ.get("FAKE_WECHAT_PORT", "8900")))
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    seed = sub.add_parser("seed-demo", help="insert the demo county")
    seed.add_argument("--county", help="the county's code (default: the default county)")
    seed.set_defaults(func=cmd_seed_demo)
    sim = sub.add_parser("simulate", help="push a message or event to the webhook like WeChat does")
    sim.add_argument("--url")
    sim.add_argument("--openid", default="o_demo_resident")
    sim.add_argument("rest", nargs=argparse.REMAINDER, help="text CONTENT | voice TEXT | event NAME [--key K]")
    sim.set_defaults(func=cmd_simulate)
    box = sub.add_parser("outbox", help="list undelivered messages or retry them")
    box.add_argument("action", choices=["failed", "retry"])
    box.add_argument("ids", nargs="*", type=int)
    box.set_defaults(func=cmd_outbox)
    push_menu = sub.add_parser("push-menu", help="create the official account's menu (menu/create)")
    push_menu.add_argument("--file", help="a menu JSON file (default liaison/data/menu.json)")
    push_menu.add_argument("--dry-run", action="store_true", help="print the body, send nothing")
    push_menu.set_defaults(func=cmd_push_menu)
    export = sub.add_parser("export-corrections", help="write category corrections for retraining")
    export.add_argument("file")
    export.set_defaults(func=cmd_export_corrections)
    staff = sub.add_parser("create-staff", help="create the first staff account (prints a binding code)")
    staff.add_argument("name")
    staff.add_argument("--county", help="the county's code (default: the default county)")
    staff.add_argument("--login", default="admin", help="console sign-in name (default admin)")
    staff.add_argument("--base-url", default=os.environ.get("CONSOLE_BASE_URL", "http://127.0.0.1:5000"),
                       help="where the console is reached, for the printed link (CONSOLE_BASE_URL)")
    staff.add_argument("--city", help="a city staff account of this city (its counties' figures)")
    staff.set_defaults(func=cmd_create_staff)
    city = sub.add_parser("city", help="add a city (a group of counties) or list them")
    city.add_argument("action", choices=["add", "list"])
    city.add_argument("code", nargs="?")
    city.add_argument("name", nargs="?")
    city.add_argument("--counties", help="comma-separated county codes")
    city.set_defaults(func=cmd_city)
    county = sub.add_parser("county", help="add a county (a tenant) or list them")
    county.add_argument("action", choices=["add", "list"])
    county.add_argument("code", nargs="?")
    county.add_argument("name", nargs="?")
    for option in ("app-id", "app-secret", "token", "encoding-aes-key"):
        county.add_argument(f"--wechat-{option}", help="the county's own official account")
    county.set_defaults(func=cmd_county)
    o311 = sub.add_parser("open311", help="Open311 partner keys, hand-off targets (直通车), a manual hand-off")
    o311.add_argument("what", choices=["key", "target", "handoff"])
    o311.add_argument("action", help="issue | revoke | list (key); set (target); a case number (handoff)")
    o311.add_argument("rest", nargs="*")
    o311.add_argument("--county", help="the county's code (default: the default county)")
    o311.add_argument("--category", help="target: the routing category (default: every category)")
    o311.add_argument("--service-code", help="target: its service_code (default: ours)")
    o311.add_argument("--jurisdiction-id", help="target: its jurisdiction_id")
    o311.set_defaults(func=cmd_open311)
    role = sub.add_parser("app-role", help="create the PostgreSQL role the app connects as (not RLS-exempt)")
    role.add_argument("role")
    role.set_defaults(func=cmd_app_role)
    login = sub.add_parser("demo-login", help="print a session token for ROLE in the embedded demo")
    login.add_argument("role", choices=DEMO_ROLES)
    login.set_defaults(func=cmd_demo_login)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as error:
        line = _unreachable(error)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
