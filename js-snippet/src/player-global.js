import { player } from './player.js';

window.hushtalePlayer = player;
