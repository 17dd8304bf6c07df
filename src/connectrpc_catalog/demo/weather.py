"""The demo API of `connectrpc-catalog --demo`: the Skylark Weather API over gRPC.

The example of ``examples/server.py``, shipped inside the package: compiles
``demo/protos/**/*.proto`` with grpc_tools into a temporary directory, then serves
``weather.v1.WeatherService`` and ``weather.v1.AlertService`` (all four kinds of method,
rich errors) with gRPC server reflection. `start` runs it in this process; the catalog
loads ``PROTO_ROOT`` (with its comments) as the base, with this server as the target.

Every answer is made up, but deterministic: the same question gets the same
answer, which keeps the end-to-end tests and the screenshots stable.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import logging
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE / "protos"
LOG = logging.getLogger("connectrpc_catalog.demo")

# A fixed clock keeps answers identical from one run to the next.
EPOCH = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)

CITIES: dict[str, tuple[float, float, str]] = {
    # name: (latitude, longitude, station id)
    "lisbon": (38.72, -9.14, "LIS-001"),
    "berlin": (52.52, 13.40, "BER-001"),
    "nairobi": (-1.29, 36.82, "NBO-001"),
    "tokyo": (35.68, 139.69, "TYO-001"),
    "new york": (40.71, -74.01, "NYC-001"),
    "reykjavik": (64.15, -21.94, "REK-001"),
}
STATIONS = {station: name for name, (_, _, station) in CITIES.items()}


def compile_protos(out_dir: Path) -> None:
    """Generate the Python modules of every .proto below PROTO_ROOT into out_dir."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _ts(msg: Any, when: datetime) -> Any:
    msg.FromDatetime(when)
    return msg


def rich_error(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, details: list[Any]
) -> None:
    """Abort the call with google.rpc.Status details in grpc-status-details-bin."""
    try:
        from google.protobuf import any_pb2
        from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]
    except ImportError:  # googleapis-common-protos missing: plain status only
        context.abort(code, message)
        return
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(code, message)


def build_services(pb: Any, pb_grpc: Any, alerts_pb: Any, alerts_grpc: Any) -> tuple[Any, Any]:
    def resolve(context: grpc.ServicerContext, location: Any) -> tuple[str, float, float, str]:
        kind = location.WhichOneof("place")
        if kind == "city":
            key = location.city.strip().lower()
            if key not in CITIES:
                from google.rpc import error_details_pb2

                rich_error(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    f'unknown city "{location.city}"',
                    [
                        error_details_pb2.ErrorInfo(
                            reason="UNKNOWN_LOCATION",
                            domain="weather.skylark.example",
                            metadata={"city": location.city, "known": ", ".join(sorted(CITIES))},
                        ),
                        error_details_pb2.Help(
                            links=[
                                error_details_pb2.Help.Link(
                                    description="Places this server knows",
                                    url="https://weather.skylark.example/places",
                                )
                            ]
                        ),
                    ],
                )
            lat, lon, station = CITIES[key]
            return key.title(), lat, lon, station
        if kind == "coordinates":
            lat, lon = location.coordinates.latitude, location.coordinates.longitude
            violations = []
            from google.rpc import error_details_pb2

            if not -90 <= lat <= 90:
                violations.append(
                    error_details_pb2.BadRequest.FieldViolation(
                        field="location.coordinates.latitude",
                        description=f"latitude must be between -90 and 90, got {lat}",
                    )
                )
            if not -180 <= lon <= 180:
                violations.append(
                    error_details_pb2.BadRequest.FieldViolation(
                        field="location.coordinates.longitude",
                        description=f"longitude must be between -180 and 180, got {lon}",
                    )
                )
            if violations:
                rich_error(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "coordinates out of range",
                    [error_details_pb2.BadRequest(field_violations=violations)],
                )
            return f"{lat:.2f}, {lon:.2f}", lat, lon, f"GRID-{abs(int(lat * 10 + lon))}"
        if kind == "station_id":
            city = STATIONS.get(location.station_id.upper())
            if city is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f'unknown station "{location.station_id}"')
            lat, lon, station = CITIES[city]  # type: ignore[index]
            return f"{city.title()} ({station})", lat, lon, station  # type: ignore[union-attr]
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "location is required: set city, coordinates or stationId",
        )
        raise AssertionError  # unreachable: abort raises

    def temperature(lat: float, day: int, hour: int, units: int) -> float:
        base = 28 - abs(lat) * 0.45 + 4 * math.sin((hour - 9) / 24 * 2 * math.pi) + (day % 3)
        if units == pb.UNITS_IMPERIAL:
            base = base * 9 / 5 + 32
        return round(base, 1)

    def condition(seed: int) -> int:
        return 1 + seed % 7

    class WeatherService(pb_grpc.WeatherServiceServicer):  # type: ignore[misc]
        def GetCurrentConditions(self, request: Any, context: grpc.ServicerContext) -> Any:
            name, lat, _, station = resolve(context, request.location)
            seed = _seed(name)
            temp = temperature(lat, 0, 9, request.units)
            imperial = request.units == pb.UNITS_IMPERIAL
            wind = pb.Wind(
                speed=round(5 + seed % 30 * (0.62 if imperial else 1), 1),
                direction_degrees=seed % 360,
            )
            if seed % 2:
                wind.gust_speed = round(wind.speed * 1.6, 1)
            out = pb.CurrentConditions(
                place_name=name,
                condition=condition(seed),
                temperature=temp,
                feels_like=round(temp - 1.5, 1),
                humidity_percent=40 + seed % 55,
                wind=wind,
                units=request.units or pb.UNITS_METRIC,
            )
            _ts(out.observed_at, EPOCH)
            if station.startswith(("LIS", "BER", "TYO")):
                out.precipitation_mm.value = round((seed % 40) / 10, 1)
            # Metadata a real service might send: where the answer came from and
            # what it cost (shown in the catalog's Headers and Trailers tabs).
            context.send_initial_metadata((("x-skylark-station", station),))
            context.set_trailing_metadata((("x-skylark-cache", "miss"),))
            return out

        def GetForecast(self, request: Any, context: grpc.ServicerContext) -> Any:
            name, lat, _, _ = resolve(context, request.location)
            days = request.days or 3
            if not 1 <= days <= 14:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "days must be between 1 and 14")
            start = (
                request.start_time.ToDatetime(tzinfo=UTC)
                if request.HasField("start_time")
                else EPOCH
            )
            out = pb.Forecast(place_name=name, units=request.units or pb.UNITS_METRIC)
            _ts(out.issued_at, EPOCH)
            out.attribution["Skylark model v4"] = "CC BY 4.0"
            out.attribution["City stations"] = "ODbL"
            for d in range(days):
                date = start + timedelta(days=d)
                seed = _seed(name, d)
                temps = [temperature(lat, d, h, request.units) for h in range(24)]
                day = out.days.add(
                    date=date.strftime("%Y-%m-%d"),
                    condition=condition(seed),
                    min_temperature=min(temps),
                    max_temperature=max(temps),
                    precipitation_chance_percent=seed % 100,
                )
                if pb.FORECAST_DETAIL_HOURLY in request.details:
                    for h in range(0, 24, 3):
                        hour = day.hourly.add(temperature=temps[h], condition=condition(seed + h))
                        _ts(hour.time, date.replace(hour=h, minute=0))
                if pb.FORECAST_DETAIL_DAYLIGHT in request.details:
                    hours = 12 + 3.5 * math.sin(lat / 90 * math.pi / 2) * math.cos(
                        (date.timetuple().tm_yday - 172) / 365 * 2 * math.pi
                    )
                    day.daylight.FromTimedelta(timedelta(hours=round(hours, 2)))
            return out

        def WatchObservations(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            station = request.station_id.upper() or "LIS-001"
            city = STATIONS.get(station)
            if city is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f'unknown station "{station}"')
            count = request.count or 5
            if not 1 <= count <= 100:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "count must be between 1 and 100")
            interval = (
                request.interval.ToTimedelta().total_seconds()
                if request.HasField("interval")
                else 1.0
            )
            interval = max(interval, 0.01)
            lat = CITIES[city][0]  # type: ignore[index]
            for i in range(count):
                if i:
                    time.sleep(interval)
                if not context.is_active():
                    return
                seed = _seed(station, i)
                obs = pb.Observation(
                    station_id=station,
                    sequence=1_000_000 + i,
                    temperature=temperature(lat, 0, 9 + i, request.units),
                    humidity_percent=40 + seed % 55,
                    wind=pb.Wind(speed=float(seed % 25), direction_degrees=seed % 360),
                    signature=hashlib.sha256(f"{station}/{i}".encode()).digest()[:12],
                )
                _ts(obs.observed_at, EPOCH + timedelta(minutes=i))
                obs.sensors["pressure_hpa"] = 1000 + seed % 30
                obs.sensors["uv_index"] = float(seed % 11)
                obs.extension.Pack(pb.AirQuality(aqi=seed % 120, pm25=seed % 35, pm10=seed % 50))
                yield obs

        def ReportObservations(self, request_iterator: Iterator[Any], context: Any) -> Any:
            out = pb.ReportSummary()
            temps: list[float] = []
            first = last = None
            for i, obs in enumerate(request_iterator):
                problem = None
                if not obs.station_id:
                    problem = f"observation {i}: stationId is required"
                elif obs.station_id.upper() not in STATIONS:
                    problem = f'observation {i}: unknown station "{obs.station_id}"'
                elif not -90 <= obs.temperature <= 60:
                    problem = f"observation {i}: temperature {obs.temperature} is implausible"
                if problem:
                    out.rejected += 1
                    out.errors.append(problem)
                    continue
                out.accepted += 1
                temps.append(obs.temperature)
                if obs.HasField("observed_at"):
                    when = obs.observed_at.ToDatetime(tzinfo=UTC)
                    first = when if first is None or when < first else first
                    last = when if last is None or when > last else last
            if temps:
                out.mean_temperature = round(sum(temps) / len(temps), 2)
            if first is not None and last is not None:
                _ts(out.first_observed_at, first)
                _ts(out.last_observed_at, last)
            return out

    def alerts_for(region: str) -> list[Any]:
        seed = _seed("alerts", region)
        out = []
        for n in range(1 + seed % 2):
            severity = 1 + (seed >> (n * 4)) % 4
            alert = alerts_pb.Alert(
                id=f"{region}-{n + 1}",
                region=region,
                severity=severity,
                headline=["Strong wind", "Heavy rain", "Heat wave", "Dense fog"][(seed + n) % 4]
                + f" in {region.title()}",
                description="Issued by the Skylark duty forecaster.",
                instructions=["Secure loose objects", "Avoid travel where possible"][: 1 + n],
            )
            alert.area.city = region.title()
            _ts(alert.effective, EPOCH + timedelta(hours=n))
            _ts(alert.expires, EPOCH + timedelta(hours=12 + n))
            out.append(alert)
        return out

    class AlertService(alerts_grpc.AlertServiceServicer):  # type: ignore[misc]
        def Subscribe(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
            regions: list[str] = []
            for req in request_iterator:
                action = req.WhichOneof("action")
                region = (req.add_region or req.remove_region).strip().lower()
                if not action or not region:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "set addRegion or removeRegion")
                if action == "add_region" and region not in regions:
                    regions.append(region)
                elif action == "remove_region" and region in regions:
                    regions.remove(region)
                yield alerts_pb.SubscribeResponse(ack=alerts_pb.Ack(regions=regions))
                if action == "add_region":
                    for alert in alerts_for(region):
                        if alert.severity >= req.min_severity:
                            yield alerts_pb.SubscribeResponse(alert=alert)

        def GetAlert(self, request: Any, context: grpc.ServicerContext) -> Any:
            region = request.id.rsplit("-", 1)[0].lower()
            for alert in alerts_for(region):
                if alert.id == request.id.lower():
                    return alert
            context.abort(grpc.StatusCode.NOT_FOUND, f'no alert with id "{request.id}"')
            raise AssertionError

    return WeatherService(), AlertService()


@dataclass
class DemoServer:
    """The demo API running in this process (grpcio on worker threads)."""

    server: grpc.Server
    port: int
    tmp: tempfile.TemporaryDirectory[str]

    @property
    def address(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving (calls in flight get a second) and drop the generated code."""
        self.server.stop(grace=1).wait()
        self.tmp.cleanup()


def start(host: str = "127.0.0.1", port: int = 0) -> DemoServer:
    """Compile the protos, import them, and serve both services on `host:port` (0: any
    free port) with gRPC server reflection. Blocking (about a second): run it in a thread."""
    tmp = tempfile.TemporaryDirectory(prefix="catalog-demo-")
    compile_protos(Path(tmp.name))
    sys.path.insert(0, tmp.name)
    try:
        pb = importlib.import_module("weather.v1.weather_pb2")
        pb_grpc = importlib.import_module("weather.v1.weather_pb2_grpc")
        alerts_pb = importlib.import_module("weather.v1.alerts_pb2")
        alerts_grpc = importlib.import_module("weather.v1.alerts_pb2_grpc")
    finally:
        sys.path.remove(tmp.name)

    weather, alerts = build_services(pb, pb_grpc, alerts_pb, alerts_grpc)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_WeatherServiceServicer_to_server(weather, server)
    alerts_grpc.add_AlertServiceServicer_to_server(alerts, server)
    names = [
        pb.DESCRIPTOR.services_by_name["WeatherService"].full_name,
        alerts_pb.DESCRIPTOR.services_by_name["AlertService"].full_name,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        tmp.cleanup()
        raise OSError(f"the demo API cannot listen on {host}:{port}")
    server.start()
    LOG.info("demo API (Skylark Weather) listening on %s:%d (gRPC)", host, bound)
    return DemoServer(server=server, port=bound, tmp=tmp)


def main() -> None:
    """python -m connectrpc_catalog.demo.weather [--port N]: the demo API on its own."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    demo = start(args.host, args.port)
    print(f"Skylark Weather demo listening on {args.host}:{demo.port} (gRPC)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    demo.stop()


if __name__ == "__main__":
    main()
