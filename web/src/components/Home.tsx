import { useState } from "preact/hooks";
import { methodHash, navigate } from "../lib/route";
import { useAppState } from "../state/store";
import { SourcesPanel } from "./Sources";
import { KindBadge, methodKind, Paragraphs } from "./ui";

/** Service cards shown at first; more on request (a big schema stays a light page). */
const CARDS = 60;

export function Home() {
  const { services, booted } = useAppState();
  const [limit, setLimit] = useState(CARDS);
  if (!booted) return <div class="page" />;
  if (!services.length) {
    return (
      <div class="page home">
        <section class="hero">
          <h1>Explore and call any Protobuf API</h1>
          <p class="lead">
            Load your <code>.proto</code> files, browse every service and method with its documentation, and call them over Connect, gRPC or
            gRPC-Web — right from the browser.
          </p>
          <ol class="steps">
            <li>
              <span class="step-n">1</span>
              <div>
                <strong>Load schemas</strong>
                <p class="muted">A folder of .proto files, a server with reflection, a Buf module, a Git repository — or drop files here.</p>
              </div>
            </li>
            <li>
              <span class="step-n">2</span>
              <div>
                <strong>Pick a method</strong>
                <p class="muted">Read its documentation and the shape of its request and response.</p>
              </div>
            </li>
            <li>
              <span class="step-n">3</span>
              <div>
                <strong>Try it</strong>
                <p class="muted">Fill the generated form (or write JSON), point it at your server and press Send.</p>
              </div>
            </li>
          </ol>
        </section>
        <SourcesPanel />
        <section class="card tip" data-testid="demo-tip">
          <h2>No API at hand? Start the demo</h2>
          <p>
            The catalog ships a small weather API with every kind of method (unary, server, client and bidi streaming) and rich errors. Start
            the catalog with it, and it is loaded here, ready to call:
          </p>
          <pre class="code-block" tabIndex={0}>connectrpc-catalog --demo</pre>
          <p class="muted small">It runs inside the catalog's process, on a free local port; nothing else to install.</p>
        </section>
      </div>
    );
  }
  const demo = services.some((s) => s.fromBase && s.name === "weather.v1.WeatherService");
  const shown = services.slice(0, limit);
  return (
    <div class="page home">
      <header class="page-head">
        <h1>Services</h1>
        <p class="muted">
          Pick a method in the list, or below. Press <kbd>/</kbd> to filter.
        </p>
      </header>
      {demo && (
        <section class="card tip" data-testid="demo-card">
          <h2>The demo API is loaded</h2>
          <p>
            Try each kind of method: <DemoLink service="weather.v1.WeatherService" method="GetCurrentConditions" /> (unary),{" "}
            <DemoLink service="weather.v1.WeatherService" method="WatchObservations" /> (server streaming),{" "}
            <DemoLink service="weather.v1.WeatherService" method="ReportObservations" /> (client streaming) and{" "}
            <DemoLink service="weather.v1.AlertService" method="Subscribe" /> (bidi: press <strong>Start live call</strong> and send one region
            at a time).
          </p>
        </section>
      )}
      <div class="service-grid">
        {shown.map((s) => (
          <section class="card service-card" aria-label={s.name}>
            <h2 class="service-title">
              {s.name.slice(s.package ? s.package.length + 1 : 0)}
              {s.deprecated && <span class="badge badge-warn">deprecated</span>}
            </h2>
            <p class="muted small mono">{s.package}</p>
            {s.documentation && <Paragraphs text={s.documentation.split(/\n\s*\n/)[0]} class="service-doc" />}
            <ul class="method-list">
              {s.methods.map((m) => (
                <li>
                  <a
                    href={methodHash(s.name, m.name)}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(methodHash(s.name, m.name));
                    }}
                  >
                    {m.name}
                  </a>
                  <KindBadge kind={methodKind(m)} />
                </li>
              ))}
            </ul>
          </section>
        ))}
      </div>
      {services.length > shown.length && (
        <p class="show-more">
          <button type="button" class="btn btn-secondary" onClick={() => setLimit(limit + CARDS * 4)}>
            Show {Math.min(services.length - shown.length, CARDS * 4)} more of {services.length - shown.length} services
          </button>{" "}
          <span class="muted small">or filter the list on the left.</span>
        </p>
      )}
    </div>
  );
}

function DemoLink({ service, method }: { service: string; method: string }) {
  return (
    <a
      href={methodHash(service, method)}
      onClick={(e) => {
        e.preventDefault();
        navigate(methodHash(service, method));
      }}
    >
      {method}
    </a>
  );
}
