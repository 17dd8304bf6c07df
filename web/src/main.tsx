import { render } from "preact";
import { App } from "./App";
import { applyTheme, currentTheme } from "./lib/theme";
import { boot } from "./state/store";
import "./styles.css";

applyTheme(currentTheme());
render(<App />, document.getElementById("app")!);
void boot();
