// Browser test of the web UI of `weir serve`: starts the real server, runs a streaming query
// through the API, and drives Debian's Chromium (playwright-core) over the queries page, the
// query page (live charts, plan tree, stop button) and the SQL box. Screenshots go to
// `target/browser-artifacts/`.
//
// Run from the repository root after `cargo build --bin weir`:
//   node --test tests/browser/ui.test.mjs
// Environment: WEIR_BIN (default target/debug/weir), CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WEIR_BIN = path.resolve(REPO, process.env.WEIR_BIN ?? 'target/debug/weir');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO, 'target', 'browser-artifacts');

const CREATE_QUERY = `
  CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', events_per_second = '2000');
  CREATE SINK per_auction WITH (connector = 'memory', output_mode = 'update') AS
    SELECT auction, count(*) AS n FROM bids GROUP BY auction`;
const CREATE_WINDOWED_QUERY = `
  CREATE SOURCE timed_bids (WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND)
    WITH (connector = 'nexmark', table = 'bid', events_per_second = '500');
  CREATE SINK per_second WITH (connector = 'memory', output_mode = 'append') AS
    SELECT window_start, window_end, count(*) AS n
    FROM TUMBLE(timed_bids, date_time, INTERVAL '1' SECOND) GROUP BY window_start, window_end`;

let server;
let serverLog = '';
let base;
let checkpoints;
let browser;
let page;
const pageErrors = [];

// ------------------------------------------------------------------ helpers

/** Polls `probe` until it returns a truthy value; fails with `what` and the last value seen. */
async function waitFor(what, probe, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${
        last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function api(method, route, body) {
  const response = await fetch(base + route, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, json: await response.json() };
}

/** An SVG path of polylines (a gap in the batches starts a new `M`) with one segment or more. */
const POLYLINE = /^M[\d.]+,[\d.]+([ML][\d.]+,[\d.]+)*L[\d.]+,[\d.]+([ML][\d.]+,[\d.]+)*$/;

/** A number as the UI prints it (`1,234.5`), or NaN. */
const number = (text) => Number(String(text).replaceAll(',', '').trim());

const text = (selector) => page.locator(selector).first().textContent();

async function screenshot(name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Starts `weir serve` on a free port; resolves with its base URL, read from its log. */
function startServer() {
  checkpoints = mkdtempSync(path.join(tmpdir(), 'weir-ui-test-'));
  server = spawn(WEIR_BIN, ['serve', '--listen', '127.0.0.1:0', '--checkpoint-root', checkpoints], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`weir serve logged no address within 30 s; its log:\n${serverLog}`)),
      30000,
    );
    const onData = (chunk) => {
      // eslint-disable-next-line no-control-regex
      serverLog += chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
      const match = serverLog.match(/address=(127\.0\.0\.1:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve(`http://${match[1]}`);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('error', (e) => reject(new Error(`cannot start ${WEIR_BIN}: ${e.message}`)));
    server.on('exit', (code) =>
      reject(new Error(`weir serve exited with code ${code} before listening; its log:\n${serverLog}`)));
  });
}

// ------------------------------------------------------------------ setup

before(async () => {
  assert.ok(existsSync(WEIR_BIN), `no weir binary at ${WEIR_BIN}: run \`cargo build --bin weir\` or set WEIR_BIN`);
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run \`apt-get install -y chromium\` or set CHROMIUM`);
  mkdirSync(ARTIFACTS, { recursive: true });
  base = await startServer();
  // The UI is embedded at build time: a binary older than the files tests an older UI.
  for (const file of ['index.html', 'app.js', 'style.css']) {
    const served = await (await fetch(`${base}${file === 'index.html' ? '/' : `/ui/${file}`}`)).text();
    const source = readFileSync(path.join(REPO, 'engine/src/server/ui', file), 'utf8');
    assert.ok(served === source, `${WEIR_BIN} serves an older ${file} than engine/src/server/ui/${file}: rebuild it with \`cargo build --bin weir\``);
  }

  const created = await api('POST', '/api/sql', { sql: CREATE_QUERY });
  assert.equal(created.status, 200, `creating the query failed: ${JSON.stringify(created.json)}`);
  assert.deepEqual(created.json.results.map((r) => r.kind), ['done', 'started']);
  assert.equal(created.json.results[1].query, 'per_auction');
  await waitFor('per_auction to run a few batches', async () => {
    const { json } = await api('GET', '/api/queries/per_auction');
    return json.batches_run >= 5 && json.last_progress?.numInputRows >= 0;
  });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console error: ${message.text()}`);
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  }
  if (checkpoints) rmSync(checkpoints, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test('the queries page lists the running query with its live figures', async () => {
  await page.goto(`${base}/`);
  const row = page.locator('tr[data-query="per_auction"]');
  await row.waitFor({ timeout: 10000 });

  assert.equal((await row.locator('td[data-col="name"]').textContent()).trim(), 'per_auction');
  assert.equal(await row.locator('td[data-col="name"] a').getAttribute('href'), '#/queries/per_auction');
  assert.equal((await row.locator('td[data-col="state"]').textContent()).trim(), 'running');
  assert.equal((await row.locator('td[data-col="sources"]').textContent()).trim(), 'bids');
  const batches = number(await row.locator('td[data-col="batches"]').textContent());
  assert.ok(batches > 0, `batches column should count the batches run, got ${batches}`);
  const inputRate = await waitFor('a positive input rate in the table', async () => {
    const rate = number(await row.locator('td[data-col="input-rate"]').textContent());
    return rate > 0 && rate;
  });
  assert.ok(inputRate < 1e6, `input rate ${inputRate} rows/s is implausible for 2,000 events/s`);
  assert.match(await row.locator('td[data-col="duration"]').textContent(), /^\d[\d,.]* (ms|s)$/);
  assert.equal((await row.locator('td[data-col="watermark"]').textContent()).trim(), '–',
    'a source without WATERMARK has no watermark');
  assert.equal((await row.locator('td[data-col="error"]').textContent()).trim(), '');

  // The table refreshes by itself.
  await waitFor('the batches column to grow without reloading', async () =>
    number(await row.locator('td[data-col="batches"]').textContent()) > batches);
  await screenshot('queries');
});

test('the query page draws live charts and the plan with per-operator figures', async () => {
  await page.locator('tr[data-query="per_auction"] td[data-col="name"] a').click();
  await page.waitForURL(/#\/queries\/per_auction$/);
  assert.equal((await text('[data-testid="query-name"]')).trim(), 'per_auction');
  await waitFor('the state badge to say running', async () =>
    (await text('[data-testid="query-state"]')).trim() === 'running');
  assert.match(await text('[data-fact="Sources"] dd'), /^bids$/);

  // Rates: two lines with points, and they move while the query runs.
  const rates = page.locator('[data-testid="chart-rates"]');
  await waitFor('the rate chart to plot more than one batch', async () =>
    Number(await rates.getAttribute('data-points')) > 1);
  const readRates = async () => ({
    points: Number(await rates.getAttribute('data-points')),
    input: await rates.locator('path[data-series="input"]').getAttribute('d'),
    processed: await rates.locator('path[data-series="processed"]').getAttribute('d'),
  });
  const first = await readRates();
  assert.match(first.input, POLYLINE, 'the input-rate line should be a polyline');
  assert.match(first.processed, POLYLINE, 'the processing-rate line should be a polyline');
  const legend = await rates.locator('text.legend').allTextContents();
  assert.deepEqual(legend, ['input rows/s', 'processed rows/s']);
  assert.ok((await rates.locator('text.axis-title').allTextContents()).includes('rows/s'),
    'the rate chart labels its y axis with its unit');
  await page.waitForTimeout(3000);
  const second = await readRates();
  assert.notEqual(second.input, first.input, 'the input-rate line did not change in 3 s while the query runs');

  // Phases: one stacked area per phase, non-empty.
  const phases = page.locator('[data-testid="chart-phases"]');
  const areas = await phases.locator('path.area').evaluateAll((paths) => paths.map((p) => p.dataset.series));
  assert.deepEqual(areas, ['latestOffset', 'walCommit', 'getBatch', 'execute', 'sinkWrite', 'commitOffsets']);
  const phasesBefore = await phases.locator('path[data-series="execute"]').getAttribute('d');
  await waitFor('the phase chart to change', async () =>
    (await phases.locator('path[data-series="execute"]').getAttribute('d')) !== phasesBefore);

  // State: rows and bytes of aggregate-0; no watermark on this source.
  const state = page.locator('[data-testid="chart-state"]');
  assert.ok(Number(await state.getAttribute('data-points')) > 1, 'the state chart should plot the batches');
  assert.ok(await state.locator('path[data-series="rows"]').getAttribute('d'));
  assert.ok(await state.locator('path[data-series="bytes"]').getAttribute('d'));
  const watermark = page.locator('[data-testid="chart-watermark"]');
  assert.equal(await watermark.getAttribute('data-points'), '0');
  assert.equal((await watermark.locator('text.chart-empty').textContent()).trim(), 'This query has no watermark.');

  // The plan: Projection above the aggregate above the scan, with figures.
  const aggregate = page.locator('[data-testid="plan-node"][data-operator="StreamingAggregateExec"]');
  await aggregate.waitFor({ timeout: 5000 });
  assert.equal(await aggregate.getAttribute('data-operator-id'), 'aggregate-0');
  assert.equal((await aggregate.locator('.plan-id').textContent()).trim(), 'aggregate-0');
  const outputRows = number(await aggregate.locator('[data-figures="metrics"] [data-key="output_rows"] dd').textContent());
  assert.ok(Number.isInteger(outputRows) && outputRows >= 0, `output_rows should be a count, got ${outputRows}`);
  assert.match(await aggregate.locator('[data-figures="metrics"] [data-key="elapsed_compute"] dd').textContent(), /\d/);
  const stateRows = number(await aggregate.locator('[data-figures="state"] [data-key="state rows"] dd').textContent());
  assert.ok(stateRows > 0, `the aggregate should show its state rows from stateOperators, got ${stateRows}`);
  assert.match(await aggregate.locator('[data-figures="state"] [data-key="state bytes"] dd').textContent(), /\d (B|KiB|MiB)$/);
  const order = await page.locator('[data-testid="plan-node"]').evaluateAll((nodes) => nodes.map((n) => n.dataset.operator));
  assert.ok(order.indexOf('StreamingAggregateExec') > 0 && order.at(-1) === 'DataSourceExec',
    `the plan tree should go from the output down through the aggregate to the source: ${order}`);
  const scanUnderAggregate = await aggregate.evaluate((node) =>
    node.parentElement.querySelector(':scope > ul > li > [data-operator="DataSourceExec"]') !== null);
  assert.ok(scanUnderAggregate, 'DataSourceExec should hang under the aggregate in the tree');
  assert.match(await page.locator('[data-testid="plan-text"]').textContent(), /StreamingAggregateExec: id=aggregate-0/);

  assert.ok(await page.locator('[data-testid="query-error"]').isHidden(), 'a healthy query shows no error');
  assert.ok(await page.locator('[data-testid="stop-button"]').isEnabled());
  await screenshot('query');
});

test('the SQL box shows rows, started queries and errors', async () => {
  await page.goto(`${base}/#/sql`);
  const input = page.locator('[data-testid="sql-input"]');
  const results = page.locator('[data-testid="sql-results"]');

  await input.fill('SHOW SOURCES');
  await page.locator('[data-testid="sql-run"]').click();
  const table = results.locator('[data-testid="sql-result"][data-kind="rows"] table');
  await table.waitFor({ timeout: 10000 });
  const headers = await table.locator('th').allTextContents();
  assert.ok(headers.includes('name') && headers.includes('connector'), `SHOW SOURCES columns: ${headers}`);
  const cells = await table.locator('tbody tr').first().locator('td').allTextContents();
  assert.equal(cells[headers.indexOf('name')], 'bids');
  assert.equal(cells[headers.indexOf('connector')], 'nexmark');

  // A bad statement shows the server's own message.
  const bad = 'SELEC nonsense';
  const expected = await api('POST', '/api/sql', { sql: bad });
  assert.equal(expected.status, 400);
  await input.fill(bad);
  await input.press('Control+Enter');
  const error = results.locator('[data-testid="sql-error"]');
  await error.waitFor({ timeout: 10000 });
  const shown = await error.textContent();
  assert.ok(shown.includes(expected.json.error.message),
    `the SQL box should show "${expected.json.error.message}", shows "${shown}"`);
  assert.match(shown, /HTTP 400/);
  assert.equal(await results.locator('[data-testid="sql-result"]').count(), 0, 'old results are replaced');
  await screenshot('sql-error');

  // A query with a watermark: the result links to it, and its page plots the watermark delay.
  await input.fill(CREATE_WINDOWED_QUERY);
  await page.locator('[data-testid="sql-run"]').click();
  const started = results.locator('[data-testid="sql-result"][data-kind="started"]');
  await started.waitFor({ timeout: 10000 });
  assert.equal((await started.locator('p').textContent()).trim(), 'Started query per_second.');
  assert.equal(await started.locator('a').getAttribute('href'), '#/queries/per_second');
  assert.equal((await results.locator('[data-kind="done"] p').textContent()).trim(), 'created source timed_bids');
  await screenshot('sql');

  await started.locator('a').click();
  await page.waitForURL(/#\/queries\/per_second$/);
  const watermark = page.locator('[data-testid="chart-watermark"]');
  await waitFor('the watermark chart to plot batches', async () =>
    Number(await watermark.getAttribute('data-points')) > 1);
  assert.match(await watermark.locator('path[data-series="delay"]').getAttribute('d'), POLYLINE);
  assert.match(await text('[data-fact="Watermark"] dd'), /^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3}$/);
  const aggregate = page.locator('[data-testid="plan-node"][data-operator="StreamingAggregateExec"]');
  await aggregate.waitFor({ timeout: 5000 });
  assert.match(await aggregate.locator('.plan-detail').textContent(), /watermark=\d{4}-/);
  await screenshot('query-watermark');
});

test('a failed query shows its error in the table and on its page', async () => {
  // Nothing listens on port 1, and the sink gives up at once.
  const created = await api('POST', '/api/sql', { sql: `CREATE SINK hook WITH (connector = 'webhook',
    url = 'http://127.0.0.1:1/hook', max_retries = '0') AS SELECT auction, price FROM bids` });
  assert.equal(created.status, 200, `creating the failing query: ${JSON.stringify(created.json)}`);
  const failed = await waitFor('the webhook query to fail', async () => {
    const { json } = await api('GET', '/api/queries/hook');
    return json.state === 'failed' && json;
  });
  assert.match(failed.last_error, /127\.0\.0\.1:1/);

  await page.goto(`${base}/`);
  const row = page.locator('tr[data-query="hook"]');
  await row.waitFor({ timeout: 10000 });
  assert.equal((await row.locator('td[data-col="state"]').textContent()).trim(), 'failed');
  const cell = row.locator('td[data-col="error"] div');
  assert.equal(await cell.getAttribute('title'), failed.last_error, 'the table carries the whole error');
  assert.equal(await cell.textContent(), failed.last_error);

  await row.locator('td[data-col="name"] a').click();
  const error = page.locator('[data-testid="query-error"]');
  await waitFor('the error box on the query page', () => error.isVisible());
  assert.equal(await page.locator('#q-error-text').textContent(), failed.last_error);
  assert.ok(await page.locator('[data-testid="stop-button"]').isDisabled(), 'a failed query cannot be stopped');
  assert.equal((await page.locator('[data-testid="chart-rates"] text.chart-empty').textContent()).trim(), 'No batch ran.');
  await screenshot('query-failed');
});

test('the stop button stops the query', async () => {
  await page.goto(`${base}/#/queries/per_auction`);
  const stop = page.locator('[data-testid="stop-button"]');
  await waitFor('the stop button to be enabled', () => stop.isEnabled());
  await stop.click();
  await waitFor('the state badge to say stopped', async () =>
    (await text('[data-testid="query-state"]')).trim() === 'stopped');
  assert.ok(await stop.isDisabled(), 'a stopped query cannot be stopped again');
  const { json } = await api('GET', '/api/queries/per_auction');
  assert.equal(json.state, 'stopped');
  await screenshot('query-stopped');

  await page.goto(`${base}/#/queries/no_such_query`);
  const missing = page.locator('[data-testid="query-missing"]');
  await missing.waitFor({ timeout: 5000 });
  assert.equal((await missing.textContent()).trim(), "No query named 'no_such_query'.");
});

test('the pages raised no script errors', () => {
  // Chromium logs the answers the tests asked for (400 for the bad statement, 404 for the
  // missing query); anything else is a bug in the UI.
  const unexpected = pageErrors.filter((e) => !/Failed to load resource: .* status of (400|404)/.test(e));
  assert.deepEqual(unexpected, []);
});
