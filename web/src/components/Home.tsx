import { methodHash, navigate } from "../lib/route";
import { useAppState } from "../state/store";
import { SourcesPanel } from "./Sources";
import { KindBadge, methodKind, Paragraphs } from "./ui";

export function Home() {
  const { services, booted } = useAppState();
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
        <section class="card tip">
          <h2>No API at hand? Use the example</h2>
          <p>The project ships a small weather API with every kind of method. From the project folder:</p>
          <pre class="code-block" tabIndex={0}>python examples/server.py --port 50051</pre>
          <p>
            then load the folder <code>examples/weather</code> (or the reflection endpoint <code>localhost:50051</code>) and call it at{" "}
            <code>localhost:50051</code> with the gRPC transport.
          </p>
        </section>
      </div>
    );
  }
  return (
    <div class="page home">
      <header class="page-head">
        <h1>Services</h1>
        <p class="muted">
          Pick a method in the list, or below. Press <kbd>/</kbd> to filter.
        </p>
      </header>
      <div class="service-grid">
        {services.map((s) => (
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
    </div>
  );
}
