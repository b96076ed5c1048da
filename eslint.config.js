// ESLint for the page's scripts (browser modules) and their Node tests (tests/js):
//   node_modules/.bin/eslint src/room_recovery/web/static tests/js eslint.config.js
// The recommended rules only; types are TypeScript's job (tsconfig.json).
import js from '@eslint/js';
import globals from 'globals';

export default [
  js.configs.recommended,
  {
    files: ['src/room_recovery/web/static/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
  {
    files: ['tests/js/**/*.{js,mjs}', 'eslint.config.js'],
    languageOptions: { globals: globals.node },
  },
];
