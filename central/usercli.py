"""``xl-central user add|passwd``: accounts managed on the central box itself, such as the first
admin of a fresh install (the API needs a login, or the bootstrap token, to create one)."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from pydantic import SecretStr, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from central import db
from central.auth.models import User
from central.auth.schemas import NewPassword, Role, UserIn
from central.auth.service import Passwords, create_user
from central.settings import CentralSettings
from central.stations.service import load_reference

_NEW_PASSWORD: TypeAdapter[SecretStr] = TypeAdapter(NewPassword)


def add_parser(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="add a user or set a password, in the service's own database")
    user.add_argument("--db", dest="database_url", metavar="URL", help="SQLAlchemy URL (XL_CENTRAL_DATABASE_URL)")
    cmd = user.add_subparsers(dest="user_command", required=True)
    add = cmd.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--display-name", help="name shown in the console (default: the username)")
    add.add_argument("--station", help="operators: the station they work for")
    add.add_argument("--worker", help="grid workers: their worker id in the reference data")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    pw = cmd.add_parser("passwd", help="set a user's password (asks for it)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("xl-central: the two passwords differ; nothing changed")
    return first


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'user'}: {e['msg']}" for e in exc.errors())


def run(settings: CentralSettings, args: argparse.Namespace) -> int:
    engine = db.make_engine(settings.database_url)
    try:
        db.migrate(engine)  # a fresh install's database may not exist before the service first ran
        with db.make_session_factory(engine)() as session:
            if settings.reference_dir.is_dir():  # stations and workers, which users refer to
                load_reference(session, settings.reference_dir)
            passwords = Passwords(settings.password_hash_time_cost, settings.password_hash_memory_kib)
            if args.user_command == "add":
                return _add(session, passwords, args)
            return _passwd(session, passwords, args)
    finally:
        engine.dispose()


def _add(session, passwords: Passwords, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    if session.scalar(select(User).where(User.username == args.username)) is not None:
        print(f"xl-central: user {args.username!r} exists; set its password with `user passwd`", file=sys.stderr)
        return 1
    try:
        data = UserIn(username=args.username, display_name=args.display_name or args.username,
                      password=_password(args.password_stdin), role=args.role,
                      station_id=args.station, worker_id=args.worker)  # fmt: skip
    except ValidationError as exc:
        print(f"xl-central: cannot add {args.username!r}: {_errors(exc)}", file=sys.stderr)
        return 2
    try:
        create_user(session, passwords, data, datetime.now(UTC))
    except IntegrityError:
        session.rollback()
        print(f"xl-central: cannot add {args.username!r}: station {args.station!r} or worker {args.worker!r} "
              "is not in the reference data", file=sys.stderr)  # fmt: skip
        return 2
    print(f"user {args.username} ({args.role}) added")
    return 0


def _passwd(session, passwords: Passwords, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    user = session.scalar(select(User).where(User.username == args.username))
    if user is None:
        print(f"xl-central: no user {args.username!r}", file=sys.stderr)
        return 1
    try:  # the API's own rule for a password being set
        password = _NEW_PASSWORD.validate_python(SecretStr(_password(args.password_stdin)))
    except ValidationError as exc:
        print(f"xl-central: {_errors(exc)}; nothing changed", file=sys.stderr)
        return 2
    user.password_hash = passwords.hash(password.get_secret_value())
    session.commit()
    print(f"password of {args.username} set")
    return 0
