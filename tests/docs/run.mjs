// /docs in a real browser: headless Chromium (Debian's `chromium`) driven by playwright-core
// against a real lelantosd (API-only mode) serving Swagger UI from tools/docs-ui (installed by
// tools/setup.sh). The page must list the API's endpoint groups, and "Try it out" on
// POST /sandboxes, authorized with the API key in the page's dialog, must create a sandbox that
// the test then reads through the API. Exit 77 (skipped, with the reason) only when chromium,
// playwright-core or swagger-ui-dist is not installed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [daemon, srcDir] = process.argv.slice(2);
const uiDir = join(srcDir, 'tools/docs-ui/node_modules/swagger-ui-dist');
const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
function skip(why) {
  console.log(`SKIPPED: ${why}`);
  process.exit(77);
}
if (!chromiumPath) skip('chromium is not installed (Debian package chromium; tools/setup.sh installs it)');
if (!existsSync(join(uiDir, 'swagger-ui-bundle.js'))) skip(`swagger-ui-dist is not installed in ${uiDir} (tools/setup.sh: npm ci)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  skip('playwright-core is not installed in tests/docs (tools/setup.sh: npm ci)');
}

let failed = 0, passed = 0;
function check(cond, what) {
  if (cond) passed++;
  else {
    failed++;
    console.error(`CHECK failed: ${what}`);
  }
}

const freePort = () => new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => res(port));
  });
});

const dir = mkdtempSync(join(tmpdir(), 'lel-docs-'));
const port = await freePort();
writeFileSync(join(dir, 'config.yaml'), [
  `listen: ["127.0.0.1:${port}"]`, `data_dir: ${join(dir, 'data')}`, 'store:', '  sync: false',
  'vmm:', '  backend: none', 'docs:', `  ui_dir: ${uiDir}`, ''].join('\n'));
const proc = spawn(daemon, ['--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'inherit', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
let browser;
try {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const key = readFileSync(join(dir, 'data/initial-api-key'), 'utf8').trim();
  const asset = await fetch(`${base}/docs/swagger-ui-bundle.js`);
  check(asset.status === 200 && asset.headers.get('content-type') === 'application/javascript', 'the bundle is served');
  check((await fetch(`${base}/docs/../openapi.json`)).status !== 500, 'a path out of /docs is no crash');

  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(`${base}/docs`);
  await page.waitForSelector('.opblock-tag');
  const tags = await page.$$eval('.opblock-tag', (els) => els.map((e) => e.getAttribute('data-tag')));
  for (const t of ['Sandboxes', 'Snapshots', 'Commands and files', 'Templates', 'Images', 'API keys', 'Teams', 'Service'])
    check(tags.includes(t), `the page lists the group ${t} (it has ${tags.join(', ')})`);
  const title = await page.textContent('.info .title');
  check(title && title.includes('Lelantos REST API'), `the page shows the document's title (${title})`);

  // Authorize with the API key (the ApiKeyAuth scheme, X-API-Key)
  await page.click('.auth-wrapper .authorize');
  const box = page.locator('.auth-container', { hasText: 'ApiKeyAuth' });
  await box.locator('input').fill(key);
  await box.locator('button.authorize').click();
  await page.click('.auth-btn-wrapper .btn-done, .modal-ux .close-modal');

  // Try it out: POST /sandboxes (its group opened first: the page starts with the groups folded)
  await page.click('.opblock-tag[data-tag="Sandboxes"]');
  const op = page.locator('#operations-Sandboxes-createSandbox');
  await op.locator('.opblock-summary').first().click();
  await op.locator('.try-out__btn').click();
  await op.locator('textarea.body-param__text').fill('{"templateID": "base", "metadata": {"via": "docs"}}');
  await op.locator('.execute').click();
  const status = op.locator('.live-responses-table tr.response .response-col_status').first();
  await status.waitFor();
  const code = (await status.textContent()).trim();
  check(code === '201', `Try it out answered ${code}`);
  const text = await op.locator('.live-responses-table .response-col_description pre').first().textContent();
  let id = '';
  try {
    id = JSON.parse(text).sandboxID;
  } catch {}
  check(/^[a-z0-9]{20}$/.test(id), `the answer shown carries a sandboxID (${text.slice(0, 120)})`);

  // the test sees it through the API
  const got = await fetch(`${base}/sandboxes/${id}`, { headers: { 'X-API-Key': key } });
  check(got.status === 200, `GET /sandboxes/${id} answered ${got.status}`);
  const sbx = got.status === 200 ? await got.json() : {};
  check(sbx.state === 'running' && sbx.metadata && sbx.metadata.via === 'docs', 'it is running with the metadata typed in the page');
  const list = await (await fetch(`${base}/sandboxes`, { headers: { 'X-API-Key': key } })).json();
  check(list.some((s) => s.sandboxID === id), 'it is in the list');
} catch (e) {
  failed++;
  console.error(`FAILED: ${e.stack || e}`);
} finally {
  if (browser) await browser.close();
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
