// API reports (@microsoft/api-extractor): one `<entry>.api.md` per public entry point of each
// published package, under packages/<name>/api/, checked in. `npm test` runs this in check mode:
// a change of the public surface that is not in the checked-in report fails, so it shows in
// review. After a deliberate change: `npm run api:update` (after `npm run build`) and commit.
//
//   node scripts/api-report.mjs [--update] [--package <folder under packages/>]
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { update: { type: 'boolean', default: false }, package: { type: 'string' } }, strict: true });
const root = resolve(import.meta.dirname, '..');
const packagesDir = join(root, 'packages');
let failed = 0;
let checked = 0;

for (const dir of readdirSync(packagesDir).sort()) {
  if (values.package !== undefined && dir !== values.package) continue;
  const packageFolder = join(packagesDir, dir);
  const manifest = JSON.parse(readFileSync(join(packageFolder, 'package.json'), 'utf8'));
  if (manifest.private) continue;
  for (const [subpath, conditions] of Object.entries(manifest.exports ?? {})) {
    const types = typeof conditions === 'object' ? conditions.types : undefined;
    if (types === undefined) continue;
    const entry = subpath === '.' ? 'index' : subpath.slice(2).replaceAll('/', '-');
    const reportFolder = join(packageFolder, 'api');
    const reportFile = join(reportFolder, `${entry}.api.md`);
    mkdirSync(reportFolder, { recursive: true });
    const config = ExtractorConfig.prepare({
      configObject: {
        projectFolder: packageFolder,
        mainEntryPointFilePath: join(packageFolder, types),
        compiler: { overrideTsconfig: { compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2023', 'DOM'], types: ['node'], skipLibCheck: true, strict: true } } },
        apiReport: { enabled: true, reportFolder, reportFileName: `${entry}.api.md`, reportTempFolder: join(root, 'node_modules/.cache/api-report', dir) },
        docModel: { enabled: false },
        dtsRollup: { enabled: false },
        tsdocMetadata: { enabled: false },
        messages: {
          compilerMessageReporting: { default: { logLevel: 'none' } },
          extractorMessageReporting: { default: { logLevel: 'none' }, 'ae-missing-release-tag': { logLevel: 'none' } },
          tsdocMessageReporting: { default: { logLevel: 'none' } },
        },
      },
      configObjectFullPath: join(packageFolder, 'api-extractor.json'),
      packageJsonFullPath: join(packageFolder, 'package.json'),
    });
    const before = existsSync(reportFile) ? readFileSync(reportFile, 'utf8') : undefined;
    const result = Extractor.invoke(config, { localBuild: values.update, showVerboseMessages: false, messageCallback: (m) => { m.handled = true; } });
    checked += 1;
    const name = `${manifest.name}${subpath === '.' ? '' : subpath.slice(1)}`;
    if (!result.succeeded || (!values.update && result.apiReportChanged)) {
      failed += 1;
      console.error(`✗ ${name}: ${before === undefined ? 'no checked-in report' : 'the public API differs from'} packages/${dir}/api/${entry}.api.md` + (values.update ? ` (${result.errorCount} errors)` : '; run `npm run api:update` and commit the report if the change is meant'));
    } else if (values.update && result.apiReportChanged) {
      console.log(`✓ ${name}: report updated`);
    }
  }
}
if (failed > 0) process.exit(1);
console.log(`api reports: ${checked} entry points ${values.update ? 'written' : 'match'}`);
