// Opens a report page in headless Chromium and prints what the tests assert on, as one JSON line:
// console/page errors, broken images, the verdict block's box and its numbers (data-key/data-value/text).
import chromium from '@sparticuz/chromium';
import puppeteer from 'puppeteer-core';
const [,, url, shot] = process.argv;
const browser = await puppeteer.launch({ args: chromium.args, executablePath: await chromium.executablePath(), headless: true });
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 1000 });
const errors = [];
page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
page.on('pageerror', e => errors.push(String(e)));
await page.goto(url, { waitUntil: 'networkidle0' });
if (shot) await page.screenshot({ path: shot });  // the first 1000 px, as a reader sees them
const info = await page.evaluate(() => {
  const v = document.getElementById('verdict');
  const box = v ? v.getBoundingClientRect() : null;
  return {
    title: document.title, imgs: document.images.length, h: document.body.scrollHeight,
    broken: [...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.alt || i.src.slice(0, 60)),
    verdict: box ? { top: box.top + window.scrollY, bottom: box.bottom + window.scrollY, text: v.innerText } : null,
    numbers: [...document.querySelectorAll('#verdict [data-key]')].map(e => ({ key: e.dataset.key, value: e.dataset.value, decimals: e.dataset.decimals, text: e.textContent })),
    statuses: [...document.querySelectorAll('#verdict .card')].map(e => [e.id, e.dataset.status]),
    sortable: document.querySelectorAll('table.sortable').length,
  };
});
console.log(JSON.stringify({ ...info, errors }));
await browser.close();
