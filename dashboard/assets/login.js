import { api } from './api.js';

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = Object.fromEntries(new FormData(form));
  try {
    await api('/api/operator/login', { method: 'POST', body: data });
    location.assign('/dashboard');
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
});
